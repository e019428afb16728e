import { startApp, type App } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { createLogger } from './logger.js';

/** Entry point: configuration from the environment, start, and a graceful stop on SIGTERM/SIGINT. */
async function main() {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`vault: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger(config.logLevel);

  // Signal handlers go in first, so a signal during start-up also ends in a clean stop.
  let app: App | undefined;
  let stopping: string | undefined;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = signal;
    if (!app) return; // start-up finishes, then stops
    logger.info({ signal }, 'shutting down: finishing in-flight calls');
    app.stop().then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  app = await startApp(config, logger);
  logger.info({ grpcPort: app.grpcPort, httpPort: app.httpPort, host: config.host, storage: app.devMode ? 'memory' : 'mysql' }, 'vault started');
  if (app.devMode) printDevBanner(config.host, app.grpcPort, app.httpPort, app.rootToken, config.rootToken === undefined);
  if (stopping) {
    const signal = stopping;
    stopping = undefined;
    stop(signal);
  }
}

function printDevBanner(host: string, grpcPort: number, httpPort: number, rootToken: string, generated: boolean) {
  const lines = [
    '',
    '==> Vault is running in DEV MODE on in-memory storage.',
    '    Everything stored is LOST when the process exits. Do not use dev mode for real secrets.',
    '',
    `    gRPC:        ${host}:${grpcPort}`,
    `    HTTP/JSON:   http://${host}:${httpPort}`,
    `    Root token:  ${rootToken}${generated ? '  (generated; set VAULT_ROOT_TOKEN to choose one)' : ''}`,
    '',
    `    export VAULT_TOKEN=${rootToken}`,
    `    curl -H "Authorization: Bearer $VAULT_TOKEN" http://${host}:${httpPort}/v1/vaults`,
    `    npx buf curl --protocol grpc --http2-prior-knowledge --list-methods http://${host}:${grpcPort}`,
    '',
  ];
  process.stderr.write(`${lines.join('\n')}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`vault: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
