import { randomBytes } from 'node:crypto';
import { createPolicyAccessControl } from './domain/access-control.js';
import { createAgentTokens } from './auth/agent-token.js';
import { deriveAgentTokenKeys } from './auth/agent-token-keys.js';
import { createCredentialAuthenticator } from './auth/credential-authenticator.js';
import { createFailedAuthLimiter, DEFAULT_FAILED_AUTH_LIMITS } from './auth/failed-auth-limiter.js';
import type { Config } from './config.js';
import { createHttpGateway } from './gateway/http-server.js';
import { descriptorRegistry } from './gateway/route-table.js';
import { createBarrier } from './crypto/barrier.js';
import { checkKeysAgainstStorage } from './crypto/key-check.js';
import { createKeyring, deriveKey } from './crypto/keyring.js';
import { createAgentService } from './domain/agent-service.js';
import { createAuditChain } from './domain/audit-chain.js';
import { createAuditService } from './domain/audit-service.js';
import { createChangeFeed } from './domain/change-feed.js';
import { createMasterKeyService, openRetiredAuditKeys } from './domain/master-keys.js';
import { createIdempotency } from './domain/idempotency.js';
import { createPageTokens } from './domain/paging.js';
import { createPolicyService } from './domain/policy-service.js';
import { createRotationScheduler, type RotationScheduler } from './domain/rotation-scheduler.js';
import { createExpiryRecorder, type ExpiryRecorder } from './domain/expiry-recorder.js';
import { createSecretService } from './domain/secret-service.js';
import { createSecretWatch } from './domain/secret-watch.js';
import { createTokenExchange } from './domain/token-exchange.js';
import { createVaultService } from './domain/vault-service.js';
import type { Logger } from './logger.js';
import { createMetricsEndpoint, createMetricsServer } from './metrics/metrics-endpoint.js';
import { createMetrics, type Metrics } from './metrics/metrics.js';
import type { ApiMethod } from './rpc/api-method.js';
import { loadDescriptorSetBytes } from './rpc/descriptors.js';
import { createGrpcServer } from './rpc/grpc-server.js';
import { createClientAddressResolver } from './rpc/client-address.js';
import { createIdempotentCalls } from './rpc/idempotent-calls.js';
import { createInvoker } from './rpc/invoker.js';
import { guardRequests } from './rpc/request-guard.js';
import { agentServiceMethods, authServiceMethods } from './rpc/services/agent-handlers.js';
import { auditServiceMethods } from './rpc/services/audit-handlers.js';
import { policyServiceMethods } from './rpc/services/policy-handlers.js';
import { secretServiceMethods } from './rpc/services/secret-handlers.js';
import { systemServiceMethods } from './rpc/services/system-handlers.js';
import { vaultServiceMethods } from './rpc/services/vault-handlers.js';
import { createMemoryStorage } from './storage/memory/memory-store.js';
import type { Storage } from './storage/storage.js';
import { createServerTls, type CertificateSummary } from './tls/server-tls.js';
import { VERSION } from './version.js';

export interface App {
  readonly grpcPort: number;
  /** The HTTP/JSON gateway's port (the REST paths of the google.api.http annotations). */
  readonly httpPort: number;
  /** The root token in force (generated in dev mode when none was configured). */
  readonly rootToken: string;
  /** The port of the separate metrics listener, when VAULT_METRICS_PORT is set. */
  readonly metricsPort: number | undefined;
  /** True when running on in-memory storage. */
  readonly devMode: boolean;
  readonly methods: readonly ApiMethod[];
  /** The served certificate, or undefined when both listeners are plaintext. */
  readonly tls: CertificateSummary | undefined;
  /**
   * Reads the TLS files again and serves them to new connections on both listeners (what SIGHUP
   * does); open connections are kept. Throws a TlsFilesError, still serving the old ones, if the
   * new files are unusable; undefined without TLS.
   */
  reloadTls(): CertificateSummary | undefined;
  /** Scheduled rotation; its timer runs `tick` every second unless the app was started without it. */
  readonly rotationScheduler: RotationScheduler;
  /** Records expired versions once each; its timer runs `tick` every VAULT_EXPIRY_CHECK_MS unless the app was started without it. */
  readonly expiryRecorder: ExpiryRecorder;
  /** Deletes expired idempotency keys (what its timer does every minute); returns how many. */
  expireIdempotencyKeys(): Promise<number>;
  /** Stops accepting calls, finishes in-flight ones, closes storage. */
  stop(): Promise<void>;
}

/** What is wired in besides configuration. */
export interface AppOptions {
  /** The clock every rule reads (expiry, token lifetimes, agent caching, schedules); tests advance their own. */
  now?: () => Date;
  /** How often the rotation scheduler ticks; null starts no timer (tests call tick). Default 1000. */
  rotationTickMs?: number | null;
  /** How often the expiry recorder ticks; null starts no timer (tests call tick). Default: config.expiryCheckMs. */
  expiryTickMs?: number | null;
}

/** The composition root: the only place concrete implementations are chosen and wired. */
export async function startApp(config: Config, logger: Logger, { now = () => new Date(), rotationTickMs = 1000, expiryTickMs = config.expiryCheckMs }: AppOptions = {}): Promise<App> {
  const devMode = config.databaseUrl === undefined;
  let storage: Storage | undefined;
  let watchStreams = () => 0;
  const metrics = createMetrics({ stats: () => storage!.stats(), now, watchStreams: () => watchStreams() });
  storage = await openStorage(config, logger, metrics);
  try {
    const keyring = createKeyring(config.masterKey ?? randomBytes(32), config.oldMasterKeys);
    const barrier = createBarrier(keyring);
    await checkKeysAgainstStorage(keyring, barrier, storage.keyCanaries);

    const rootToken = config.rootToken ?? randomBytes(24).toString('base64url');
    const appendAudit = storage.appendAudit.bind(storage);
    const access = createPolicyAccessControl({ policies: storage.policies, appendAudit, now });
    const tokens = createAgentTokens(deriveAgentTokenKeys(keyring));
    // Every instance derives the same key, so a page token from one is good on any other.
    const pages = createPageTokens(deriveKey(keyring.current, 'page tokens'));
    const vaults = createVaultService({ storage, access, now, pages });
    const secrets = createSecretService({ storage, barrier, access, vaults, now, maxValueBytes: config.maxValueBytes, minRotationIntervalSeconds: config.minRotationIntervalSeconds, pages });
    const rotationScheduler = createRotationScheduler({
      storage,
      secrets,
      now,
      onError: (error, where) => logger.warn({ err: error, ...where }, 'scheduled rotation failed; will retry'),
    });
    const expiryRecorder = createExpiryRecorder({
      storage,
      now,
      onError: (error, where) => logger.warn({ err: error, ...where }, 'recording an expired version failed; will retry'),
    });
    const audit = createAuditService({ storage, access, chain: createAuditChain(keyring, await openRetiredAuditKeys(storage, barrier)), pages });
    const idempotency = createIdempotency({
      storage,
      now,
      retentionSeconds: config.idempotencyRetentionSeconds,
      fingerprintKey: deriveKey(keyring.current, 'idempotency fingerprints'),
    });
    // One tail of the sealed audit chain for every WatchSecrets stream on this instance.
    const changeFeed = createChangeFeed({
      audit: storage.audit,
      maxSubscribers: config.maxWatchers,
      onError: (error) => logger.warn({ err: error }, 'reading the change feed failed; will retry from the same position'),
    });
    watchStreams = () => changeFeed.size;
    const watch = createSecretWatch({ feed: changeFeed, access, vaults, heartbeatMs: config.watchHeartbeatMs });
    const masterKeys = createMasterKeyService({ storage, barrier, keyring, access, now });

    const failures = createFailedAuthLimiter({
      appendAudit,
      now,
      limits: { ...DEFAULT_FAILED_AUTH_LIMITS, perAddress: config.authFailuresPerAddress, perAgent: config.authFailuresPerAgent },
    });
    const authenticator = createCredentialAuthenticator({ rootToken, agents: storage.agents, tokens, failures, now });
    // This instance forgets cached agents and policies at once when it changes one; others within a second.
    const onCredentialsChanged = () => {
      authenticator.forgetAgents();
      access.forgetPolicies();
    };

    const descriptorSet = loadDescriptorSetBytes();
    const methods = guardRequests([
      ...vaultServiceMethods(vaults),
      ...secretServiceMethods(secrets, watch),
      ...agentServiceMethods(createAgentService({ storage, access, now, onCredentialsChanged, pages })),
      ...authServiceMethods(createTokenExchange({ storage, tokens, failures, now })),
      ...policyServiceMethods(createPolicyService({ storage, access, vaults, now, onCredentialsChanged, pages })),
      ...auditServiceMethods(audit),
      ...systemServiceMethods({ storage, masterKeys, version: VERSION }),
    ], descriptorRegistry(descriptorSet));
    const invoke = createInvoker({
      authenticator,
      logger,
      observer: { call: metrics.observeCall, authFailed: metrics.authFailed },
      clientAddress: createClientAddressResolver(config.trustedProxies),
      handle: createIdempotentCalls(idempotency),
    });
    const failureFlusher = startFailureAuditFlusher(failures, logger);
    const sealer = startAuditSealer(audit.sealPending, logger);
    const idempotencyExpiry = startTicker(() => idempotency.expire(), 60_000, (error) =>
      logger.warn({ err: error }, 'deleting expired idempotency keys failed; will retry'),
    );
    const rotationTimer = startTicker(() => rotationScheduler.tick(), rotationTickMs, (error) =>
      logger.warn({ err: error }, 'finding due rotations failed; will retry'),
    );
    const expiryTimer = startTicker(() => expiryRecorder.tick(), expiryTickMs, (error) =>
      logger.warn({ err: error }, 'finding expired versions failed; will retry'),
    );
    const tls = config.tls ? createServerTls(config.tls, config.tlsMaterial) : undefined;
    const grpc = createGrpcServer({ methods, invoke, descriptorSet, tls });
    const metricsEndpoint = createMetricsEndpoint({ metrics, rootToken, unauthenticated: config.metricsUnauthenticated });
    const metricsServer = config.metricsPort === undefined ? undefined : createMetricsServer(metricsEndpoint, tls);
    const http = createHttpGateway({
      methods,
      invoke,
      descriptorSet,
      maxRequestBytes: config.maxRequestBytes,
      logger,
      tls,
      intercept: metricsServer ? undefined : metricsEndpoint,
    });
    // Load balancers probing grpc.health.v1 stop routing here while the database node cannot serve.
    const healthTimer = startTicker(
      () =>
        storage.ping().then(
          () => grpc.health.setStatus('', 'SERVING'),
          () => grpc.health.setStatus('', 'NOT_SERVING'),
        ),
      1000,
      () => {},
    );
    const grpcPort = await grpc.listen(config.host, config.grpcPort);
    let httpPort: number;
    let metricsPort: number | undefined;
    try {
      httpPort = await http.listen(config.host, config.httpPort);
      metricsPort = await metricsServer?.listen(config.host, config.metricsPort!);
    } catch (error) {
      await Promise.all([healthTimer.stop(), grpc.shutdown(0), http.close(0)]);
      throw error;
    }

    return {
      grpcPort,
      httpPort,
      metricsPort,
      rootToken,
      devMode,
      methods,
      get tls() {
        return tls?.current().summary;
      },
      reloadTls: () => tls?.reload().summary,
      rotationScheduler,
      expiryRecorder,
      expireIdempotencyKeys: () => idempotency.expire(),
      async stop() {
        // Open streams end first (UNAVAILABLE: reconnect with the last cursor), so nothing holds the listeners open.
        changeFeed.close();
        await healthTimer.stop();
        grpc.health.setStatus('', 'NOT_SERVING');
        await rotationTimer.stop();
        await expiryTimer.stop();
        await idempotencyExpiry.stop();
        await Promise.all([grpc.shutdown(config.shutdownGraceMs), http.close(config.shutdownGraceMs), metricsServer?.close()]);
        await failureFlusher.stop();
        await sealer.stop();
        await audit.stopSealing().catch(() => {});
        await idempotency.stop().catch(() => {});
        await expiryRecorder.stop().catch(() => {});
        await storage!.close();
      },
    };
  } catch (error) {
    await storage.close();
    throw error;
  }
}

async function openStorage(config: Config, logger: Logger, metrics: Metrics): Promise<Storage> {
  if (config.databaseUrl === undefined) return createMemoryStorage();
  // Loaded only when configured, so dev mode does not need the MySQL driver to initialise.
  const { createMysqlStorage } = await import('./storage/mysql/mysql-store.js');
  return createMysqlStorage({ url: config.databaseUrl, poolSize: config.databasePoolSize,
    poolLimits: { queueLimit: config.databaseQueueLimit, acquireTimeoutMs: config.databaseAcquireTimeoutMs },
    logger, onRetry: metrics.transactionRetried });
}

/** Runs `work` every `everyMs` (none when null); a run never overlaps another; stop waits for the one in flight. */
function startTicker(work: () => Promise<unknown>, everyMs: number | null, onError: (error: unknown) => void) {
  let running: Promise<void> | undefined;
  const run = () =>
    (running ??= work()
      .then(() => undefined)
      .catch(onError)
      .finally(() => (running = undefined)));
  const timer = everyMs === null ? undefined : setInterval(run, everyMs);
  timer?.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}

/** Writes the aggregated failed-authentication events of ended windows every few seconds. */
function startFailureAuditFlusher(failures: { flushEnded(): Promise<void>; flushAll(): Promise<void> }, logger: Logger) {
  const report = (error: unknown) => logger.warn({ err: error }, 'writing aggregated auth.failed events failed; will retry');
  const timer = setInterval(() => void failures.flushEnded().catch(report), 5000);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await failures.flushAll().catch(report);
    },
  };
}

/** Links pending audit events into the chain every half second; a run never overlaps another. */
function startAuditSealer(sealPending: () => Promise<number>, logger: Logger) {
  let running: Promise<void> | undefined;
  const run = () =>
    (running ??= sealPending()
      .then(() => undefined)
      .catch((error: unknown) => logger.warn({ err: error }, 'audit sealing failed; will retry'))
      .finally(() => (running = undefined)));
  const timer = setInterval(run, 500);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
      await run();
    },
  };
}
