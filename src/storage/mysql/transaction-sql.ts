import type { ResultSetHeader } from 'mysql2';
import { changedOf, checkParams, coreOf, sqlOn, type PoolConnection, type Sql, type SqlParam } from './pool.js';

/** A transaction's statements, and its end. */
export interface TransactionSql extends Sql {
  /** Sends what is still waiting, then COMMIT, in one round trip. */
  commit(): Promise<void>;
}

/**
 * A transaction's statements in as few round trips as their results allow. On loopback each round
 * trip costs the vault and the server a socket write and a wake-up each, which a profile of a
 * PutSecret under load showed as the largest single cost (a third of the vault's CPU in socket
 * writes, six per call). So nothing is sent until a result is needed:
 *  - `opening` (SET TRANSACTION ..., START TRANSACTION) goes with the first statement;
 *  - writes (Sql.write) wait for the COMMIT, or go before the next statement that needs a result.
 * Statements still run in the order written, so every read sees the transaction's own writes.
 *
 * Writes wait only where a failed statement ends its batch (`deferWrites`): on a single server a
 * statement's error stops a multi-statement query there. A Galera node does not keep to that when
 * another node's write aborts the transaction (a brute-force abort): with batched writes the
 * 3-node suite saw 7 to 12 of 576 hot-path writes acknowledged with a version number another
 * write also got, as if the rest of the batch ran on outside the rolled-back transaction. So on
 * a cluster node every write goes at once, as a prepared statement.
 *
 * Batches go as one multi-statement text query with values escaped by mysql2. A first `change`
 * shares its trip with the opening (which cannot fail on its own), but waiting writes go alone
 * before a statement with a result: a caller reading that statement's error (a duplicate key, a
 * missing parent) must not be handed another statement's. Selects stay prepared statements,
 * decoded by the binary protocol as everywhere else.
 */
export function transactionSqlOn(connection: PoolConnection, opening: readonly string[], deferWrites: boolean): TransactionSql {
  const core = coreOf(connection);
  const direct = sqlOn(connection);
  let unsent = [...opening];
  let writes: string[] = [];
  const send = (statements: readonly string[]) =>
    new Promise<unknown>((resolve, reject) => core.query(statements.join(';\n'), (error: Error | null, result: unknown) => (error ? reject(error) : resolve(result))));
  const take = () => {
    const statements = [...unsent, ...writes];
    unsent = [];
    writes = [];
    return statements;
  };
  const flush = async () => {
    if (unsent.length + writes.length > 0) await send(take());
  };
  const text = (statement: string, params: readonly SqlParam[]) => core.format(statement, checkParams(params));
  const sql: TransactionSql = {
    async select(statement, params = []) {
      await flush();
      return direct.select(statement, params);
    },
    async change(statement, params = []) {
      if (writes.length > 0 || unsent.length === 0) {
        await flush();
        return direct.change(statement, params);
      }
      const results = (await send([...take(), text(statement, params)])) as ResultSetHeader[];
      return changedOf(results[results.length - 1]!);
    },
    async write(statement, params = []) {
      if (deferWrites) writes.push(text(statement, params));
      else await sql.change(statement, params);
    },
    async commit() {
      // Nothing sent and nothing to write: no transaction was opened on the server.
      if (writes.length === 0 && unsent.length > 0) {
        take();
        return;
      }
      await send([...take(), 'COMMIT']);
    },
  };
  return sql;
}
