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
  // SIGHUP reloads the TLS files (and must not end the process, Node's default). Before the app
  // is up there is nothing to reload: start-up reads the files anyway.
  process.on('SIGHUP', () => {
    if (!app || stopping) return;
    if (!app.tls) {
      logger.info('SIGHUP: TLS is not configured, nothing to reload');
      return;
    }
    try {
      logger.info({ certificate: app.reloadTls() }, 'TLS certificate reloaded');
    } catch (error) {
      logger.error({ problem: error instanceof Error ? error.message : String(error) }, 'TLS reload failed; still serving the previous certificate');
    }
  });

  app = await startApp(config, logger);
  logger.info(
    {
      grpcPort: app.grpcPort,
      httpPort: app.httpPort,
      host: config.host,
      storage: app.devMode ? 'memory' : 'mysql',
      tls: app.tls ? { certificate: app.tls, clientCertificates: config.tls?.clientCaFile !== undefined ? 'required' : 'not requested' } : 'off',
    },
    'vault started',
  );
  if (config.tlsDisabled && !config.tls) logger.warn({ host: config.host }, 'TLS disabled by VAULT_TLS_DISABLE=true: serving plaintext; a TLS-terminating proxy must be in front');
  if (app.devMode) printDevBanner(config.host, app.grpcPort, app.httpPort, app.rootToken, config.rootToken === undefined, app.tls !== undefined);
  if (stopping) {
    const signal = stopping;
    stopping = undefined;
    stop(signal);
  }
}

function printDevBanner(host: string, grpcPort: number, httpPort: number, rootToken: string, generated: boolean, tls: boolean) {
  const scheme = tls ? 'https' : 'http';
  const lines = [
    '',
    '==> Vault is running in DEV MODE on in-memory storage.',
    '    Everything stored is LOST when the process exits. Do not use dev mode for real secrets.',
    '',
    `    gRPC:        ${host}:${grpcPort}`,
    `    HTTP/JSON:   ${scheme}://${host}:${httpPort}`,
    // A configured token is the operator's own secret: only a generated one is shown.
    generated ? `    Root token:  ${rootToken}  (generated; set VAULT_ROOT_TOKEN to choose one)` : '    Root token:  the one in VAULT_ROOT_TOKEN',
    '',
    generated ? `    export VAULT_TOKEN=${rootToken}` : '    export VAULT_TOKEN=$VAULT_ROOT_TOKEN',
    `    curl -H "Authorization: Bearer $VAULT_TOKEN" ${scheme}://${host}:${httpPort}/v1/vaults`,
    tls
      ? `    npx buf curl --protocol grpc --list-methods https://${host}:${grpcPort}   (add --cacert/--cert/--key as needed)`
      : `    npx buf curl --protocol grpc --http2-prior-knowledge --list-methods http://${host}:${grpcPort}`,
    '',
  ];
  process.stderr.write(`${lines.join('\n')}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`vault: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
