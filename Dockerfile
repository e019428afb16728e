# syntax=docker/dockerfile:1
# Build stage: compile TypeScript (generated code is committed, so no buf/protoc step here).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && cp src/gen/descriptors.binpb dist/gen/descriptors.binpb

# Production dependencies only, installed apart so the runtime image carries no dev tooling.
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    VAULT_HOST=0.0.0.0
WORKDIR /app
COPY --from=deps --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist ./dist
COPY --chown=node:node package.json ./
USER node
EXPOSE 50051 8080
STOPSIGNAL SIGTERM
CMD ["node", "dist/main.js"]
