import type { Connection, RowDataPacket } from 'mysql2/promise';
import type { ConnectionSettings } from './database-url.js';
import { openConnection } from './pool.js';
import { StorageUnavailableError } from '../storage-errors.js';
import type { Readiness } from './transaction.js';

/**
 * What the database node says about itself, on a connection of its own so that a saturated pool
 * (every connection stuck in a commit while the cluster evicts a dead node) never delays the
 * answer. On a single server this is just "reachable"; on a Galera node it also reads the node's
 * wsrep state, because a reachable node may still refuse work (joining, donor, or cut off from
 * the primary component).
 */
export interface NodeState {
  /** Reachable and, on a cluster, ready and Synced: health says healthy / SERVING. */
  healthy: boolean;
  /** Reachable and ready for work (a Donor/Desynced node serves, only slower). */
  ready: boolean;
  /** For logs and health details: never credentials. */
  detail: string;
}

export interface NodeHealth extends Readiness {
  /** Whether the server runs Galera (wsrep_on); read once at start. */
  galera: boolean;
  /** Asks the node now (bounded by `timeoutMs`). */
  check(): Promise<NodeState>;
  close(): Promise<void>;
}

const CHECK_TIMEOUT_MS = 2000;
const UNREACHABLE = 'the database does not answer';

export async function openNodeHealth(settings: ConnectionSettings): Promise<NodeHealth> {
  let connection: Connection | undefined = await openConnection(settings);
  let galera: boolean;
  try {
    const [rows] = await connection.query<RowDataPacket[]>("SHOW GLOBAL VARIABLES LIKE 'wsrep_on'");
    galera = String(rows[0]?.Value ?? 'OFF').toUpperCase() === 'ON';
  } catch (error) {
    await connection.end().catch(() => {});
    throw error;
  }
  // A node last seen not ready refuses calls at once (UNAVAILABLE) instead of letting each one
  // find out; a background re-check lifts that as soon as the node is ready again.
  let ready = true;
  let checking: Promise<NodeState> | undefined;
  let closed = false;

  /** One question on the health connection; a connection that was killed or went stale is replaced once. */
  async function ask(): Promise<NodeState> {
    const first = await askOnce();
    return first.detail === UNREACHABLE ? askOnce() : first;
  }

  async function askOnce(): Promise<NodeState> {
    try {
      connection ??= await openConnection(settings);
      if (!galera) {
        await connection.query({ sql: 'SELECT 1', timeout: CHECK_TIMEOUT_MS });
        return { healthy: true, ready: true, detail: 'reachable' };
      }
      const [rows] = await connection.query<RowDataPacket[]>({
        sql: "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_ready', 'wsrep_local_state_comment', 'wsrep_cluster_status')",
        timeout: CHECK_TIMEOUT_MS,
      });
      return galeraState(new Map(rows.map((r) => [String(r.Variable_name), String(r.Value)])));
    } catch {
      // The connection may be dead or stuck behind the timeout: start afresh next time.
      const dead = connection;
      connection = undefined;
      dead?.destroy();
      return { healthy: false, ready: true, detail: UNREACHABLE };
    }
  }

  function check(): Promise<NodeState> {
    return (checking ??= ask()
      .then((state) => {
        // Unreachable is left to the calls' own connection retries; only a refusing node gates them.
        ready = state.ready;
        return state;
      })
      .finally(() => (checking = undefined)));
  }

  const recheck = () => {
    if (!closed) void check();
  };
  // While the node refuses work, look again every second so the gate lifts once it is ready;
  // while it serves, health probes (app.ts) and suspect() are the checks, not this timer.
  const timer = setInterval(() => {
    if (!ready) recheck();
  }, 1000);
  timer.unref();

  return {
    galera,
    check,
    require() {
      if (!ready) throw new StorageUnavailableError('the database node is not ready (not synced with its cluster)');
    },
    suspect: recheck,
    async close() {
      closed = true;
      clearInterval(timer);
      await checking?.catch(() => {});
      await connection?.end().catch(() => connection?.destroy());
    },
  };
}

/** wsrep_ready ON in a Primary component can serve; only Synced is fully healthy. */
export function galeraState(status: Map<string, string>): NodeState {
  const readyFlag = (status.get('wsrep_ready') ?? 'OFF').toUpperCase() === 'ON';
  const component = status.get('wsrep_cluster_status') ?? 'unknown';
  const local = status.get('wsrep_local_state_comment') ?? 'unknown';
  const ready = readyFlag && component === 'Primary';
  const healthy = ready && local === 'Synced';
  const detail = healthy ? 'Galera node Synced' : `Galera node ${local}, component ${component}, wsrep_ready ${readyFlag ? 'ON' : 'OFF'}`;
  return { healthy, ready, detail };
}
