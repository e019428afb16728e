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
# 0.0.0.0 is not loopback, so the service starts only with one of (see README "TLS"):
#   - TLS: mount a certificate and key and set VAULT_TLS_CERT_FILE and VAULT_TLS_KEY_FILE
#     (optionally VAULT_TLS_CLIENT_CA_FILE for mTLS); `docker kill -s HUP` reloads them;
#   - VAULT_TLS_DISABLE=true, when a proxy or mesh in front terminates TLS.
# Without either it exits at start saying so, rather than serve secrets in plaintext.
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
