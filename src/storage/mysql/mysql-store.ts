import type { AuditRecord, RetryCause, Storage } from '../storage.js';
import { createGroupCommit } from '../group-commit.js';
import { createAgentStore } from './agent-store.js';
import { AUDIT_ROWS_PER_INSERT, auditBatchSize, insertAuditEvents } from './audit-log.js';
import { createAuditStore } from './audit-store.js';
import { explainTlsFailure } from './database-tls.js';
import { parseDatabaseUrl } from './database-url.js';
import { createIdempotencyStore } from './idempotency-store.js';
import { createKeyCanaryStore } from './key-canary-store.js';
import { createLeaseStore } from './lease-store.js';
import { migrate } from './migrations.js';
import { openNodeHealth, type NodeHealth } from './node-health.js';
import { StorageOverloadedError, StorageUnavailableError } from '../storage-errors.js';
import { createPolicyStore } from './policy-store.js';
import { DEFAULT_POOL_LIMITS, DEFAULT_POOL_SIZE, markGaleraPool, openPool, poolStats, type PoolLimits } from './pool.js';
import { createSealedBlobStore, createSealedKeyStore } from './sealed-store.js';
import { createSecretStore } from './secret-store.js';
import { DEFAULT_RETRY, inTransaction, joinedCallTransaction, withConnection, withRetries, type Database, type WarnLogger } from './transaction.js';
import { createVaultStore } from './vault-store.js';

export interface MysqlStorageOptions {
  /** mysql://user[:password]@host[:port]/database (user and password percent-encoded). */
  url: string;
  /** Connections in the pool; default 10. */
  poolSize?: number;
  /** Waiting calls and how long they wait for a connection; default 1,000 and 5 s. */
  poolLimits?: PoolLimits;
  /** Told about lost connections and exhausted retries (codes only, never values). Default: silent. */
  logger?: WarnLogger;
  /** Told each time a transaction is run again, with why (for metrics). */
  onRetry?: (cause: RetryCause) => void;
}

/**
 * Storage on MariaDB 10.11+ or MySQL 8. Connects, brings the schema up to date (safe when several
 * instances start at once), and returns the store. Rejects if the database cannot be reached or
 * migrated, with the pool closed again.
 */
export async function createMysqlStorage(options: MysqlStorageOptions): Promise<Storage> {
  const settings = parseDatabaseUrl(options.url);
  const poolSize = options.poolSize ?? DEFAULT_POOL_SIZE;
  const poolLimits = options.poolLimits ?? DEFAULT_POOL_LIMITS;
  const logger = options.logger ?? { warn() {} };
  const fail = (error: unknown) => explainTlsFailure(error, `${settings.host}:${settings.port}`, settings.tls);

  // mysql2 connects lazily: nothing is opened before the node is known.
  const pool = openPool(settings, poolSize, poolLimits);
  const db: Database = { pool, poolLimits, logger, retry: DEFAULT_RETRY, onRetry: options.onRetry };

  let node: NodeHealth | undefined;
  try {
    // Retried like any outage, so a database still starting is waited for briefly.
    node = await withRetries(db, {}, () => openNodeHealth(settings));
    if (node.galera) markGaleraPool(pool);
    db.readiness = node;
    await migrate(pool, { warn: (obj, msg) => logger.warn(obj, msg) });
  } catch (error) {
    await Promise.all([pool.end().catch(() => {}), node?.close()]);
    throw fail(error);
  }
  const health = node;

  let closing: Promise<void> | undefined;
  // Events written on their own (reads, refusals) of concurrent calls share one INSERT: one
  // statement and one log flush for many calls instead of one each (storage/group-commit.ts).
  // One multi-row INSERT is atomic on its own, so it needs no BEGIN/COMMIT; a failed batch fails
  // every call in it as unavailable, since none of their records were written. Each row count is
  // a prepared statement of its own per connection: auditBatchSize keeps them few.
  const writeAuditAlone = createGroupCommit<AuditRecord>(async (events) => {
    try {
      if (events.length <= AUDIT_ROWS_PER_INSERT) await withConnection(db, (sql) => insertAuditEvents(sql, events));
      else await inTransaction(db, (sql) => insertAuditEvents(sql, events));
    } catch (error) {
      if (error instanceof StorageUnavailableError || error instanceof StorageOverloadedError) throw error;
      throw new StorageUnavailableError('audit records could not be written', { cause: error });
    }
  }, AUDIT_ROWS_PER_INSERT, auditBatchSize);
  return {
    vaults: createVaultStore(db),
    secrets: createSecretStore(db),
    keyCanaries: createKeyCanaryStore(db),
    sealed: createSealedBlobStore(db),
    sealedKeys: createSealedKeyStore(db),
    agents: createAgentStore(db),
    policies: createPolicyStore(db),
    audit: createAuditStore(db),
    leases: createLeaseStore(db),
    idempotency: createIdempotencyStore(db),
    async appendAudit(events) {
      if (events.length === 0) return;
      // Inside a call transaction (an idempotent call) they commit, or are written, with the call.
      const call = joinedCallTransaction(db);
      if (call) {
        call.deferredAudit.push(...events);
        return;
      }
      await writeAuditAlone(events);
    },
    async ping() {
      const state = await health.check();
      if (!state.healthy) throw new StorageUnavailableError(state.detail);
    },
    async stats() {
      // The unique chain_index index holds the pending (NULL) rows together: a short range read.
      const rows = await withConnection(db, (sql) => sql.select('SELECT MIN(created_at) AS oldest FROM audit_events WHERE chain_index IS NULL'));
      const oldest = rows[0]?.oldest;
      return { pool: poolStats(pool, poolSize), oldestUnsealedAuditAt: oldest instanceof Date ? oldest : null };
    },
    close() {
      closing ??= Promise.all([pool.end(), health.close()]).then(() => undefined);
      return closing;
    },
  };
}
