import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { AuthFailureReason } from '../auth/authenticator.js';
import type { RetryCause, StorageStats } from '../storage/storage.js';

export interface MetricsDeps {
  /** Read at scrape time: pool use and the audit sealer's backlog. */
  stats: () => Promise<StorageStats>;
  now: () => Date;
  /** Read at scrape time: WatchSecrets streams open on this instance. */
  watchStreams?: () => number;
}

/**
 * The service's Prometheus metrics, on a registry of its own (several apps may run in one test
 * process). Labels carry only RPC names, gRPC code names, transports and closed-set reasons:
 * never a path, vault or agent id, value or credential.
 */
export interface Metrics {
  readonly registry: Registry;
  /** One finished RPC on either transport. `fullName` is e.g. `vault.v1.SecretService.GetSecret`. */
  observeCall(fullName: string, transport: 'grpc' | 'http', code: string, seconds: number): void;
  authFailed(reason: AuthFailureReason | 'rate_limited'): void;
  transactionRetried(cause: RetryCause): void;
  /** The Prometheus text exposition of every metric. */
  scrape(): Promise<string>;
}

/** Seconds, from 1 ms (an in-memory call) to 10 s (a call riding out a database restart). */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export function createMetrics({ stats, now, watchStreams = () => 0 }: MetricsDeps): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const callLabels = ['service', 'method', 'code', 'transport'] as const;
  const requests = new Counter({ name: 'vault_rpc_requests_total', help: 'RPCs handled, by service, method, gRPC code and transport.', labelNames: callLabels, registers: [registry] });
  const latency = new Histogram({
    name: 'vault_rpc_duration_seconds',
    help: 'Time from receiving an RPC to its answer (authentication included), by service, method, gRPC code and transport.',
    labelNames: callLabels,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const authFailures = new Counter({
    name: 'vault_auth_failures_total',
    help:
      'Calls refused for their credentials, by reason: each 401 by the credential\'s shape (missing_credentials, malformed_credentials, ' +
      'invalid_api_key, invalid_token, invalid_credentials); rate_limited: refused with 429 after too many failed authentications, credential unchecked.',
    labelNames: ['reason'],
    registers: [registry],
  });
  const retries = new Counter({
    name: 'vault_db_transaction_retries_total',
    help: 'Database transactions (or autocommit statements) run again, by cause.',
    labelNames: ['cause'],
    registers: [registry],
  });

  // The scrape-time gauges of one scrape share one stats read. If storage does not answer, they
  // keep their last values rather than failing the whole scrape (process metrics still matter).
  let pending: Promise<StorageStats | undefined> | undefined;
  const statsOnce = () =>
    (pending ??= stats()
      .catch(() => undefined)
      .finally(() => setImmediate(() => (pending = undefined))));
  const poolGauge = (name: string, help: string, pick: (pool: NonNullable<StorageStats['pool']>) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        const read = await statsOnce();
        if (read) this.set(read.pool ? pick(read.pool) : 0);
      },
    });
  poolGauge('vault_db_pool_connections', 'Connections the database pool may open (0 without a database).', (p) => p.size);
  poolGauge('vault_db_pool_connections_in_use', 'Pooled database connections handed out to a call right now.', (p) => p.inUse);
  poolGauge('vault_db_pool_waiting_requests', 'Calls waiting for a free database connection right now.', (p) => p.waiting);
  new Gauge({
    name: 'vault_audit_unsealed_oldest_age_seconds',
    help: 'Age of the oldest audit event not yet linked into the HMAC chain (0 when none is pending).',
    registers: [registry],
    async collect() {
      const read = await statsOnce();
      if (!read) return;
      const oldest = read.oldestUnsealedAuditAt;
      this.set(oldest ? Math.max(0, (now().getTime() - oldest.getTime()) / 1000) : 0);
    },
  });

  new Gauge({
    name: 'vault_watch_streams',
    help: 'WatchSecrets streams (gRPC and SSE) open on this instance right now; VAULT_MAX_WATCHERS bounds them.',
    registers: [registry],
    collect() {
      this.set(watchStreams());
    },
  });

  return {
    registry,
    observeCall(fullName, transport, code, seconds) {
      const dot = fullName.lastIndexOf('.');
      const labels = { service: fullName.slice(0, dot), method: fullName.slice(dot + 1), code, transport };
      requests.inc(labels);
      latency.observe(labels, seconds);
    },
    authFailed: (reason) => authFailures.inc({ reason }),
    transactionRetried: (cause) => retries.inc({ cause }),
    scrape: () => registry.metrics(),
  };
}
