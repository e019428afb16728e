import type { AgentChanges, AgentRecord, AgentStore, Precondition } from '../storage.js';
import { insertAuditEvents } from './audit-log.js';
import { duplicateKey } from './constraint-errors.js';
import { AGENT_COLUMNS, agentParams, checkKeyHash, KEY_HASH_BYTES, toAgent } from './identity-rows.js';
import type { Sql } from './pool.js';
import { createdAfter, limitOf } from './keyset.js';
import { utf8 } from './row-mapping.js';
import { inTransaction, withConnection, type Database } from './transaction.js';

const PLACEHOLDERS = AGENT_COLUMNS.split(',').map(() => '?').join(', ');

export function createAgentStore(db: Database): AgentStore {
  return {
    create: (agent, audit) =>
      inTransaction(db, async (sql) => {
        try {
          await sql.change(`INSERT INTO agents (${AGENT_COLUMNS}) VALUES (${PLACEHOLDERS})`, agentParams(agent));
        } catch (error) {
          throw duplicateAgentError(error, agent.id) ?? error;
        }
        await insertAuditEvents(sql, audit);
      }),

    get: (id) => withConnection(db, (sql) => selectAgent(sql, id)),

    getByKeyHash: (keyHash) =>
      withConnection(db, async (sql) => {
        // Any other length cannot be a stored SHA-256 (BINARY(32) would compare it zero-padded).
        if (keyHash.length !== KEY_HASH_BYTES) return null;
        const [row] = await sql.select(`SELECT ${AGENT_COLUMNS} FROM agents WHERE key_hash = ?`, [keyHash]);
        return row ? toAgent(row) : null;
      }),

    list: (page) =>
      withConnection(db, async (sql) => {
        const after = createdAfter(page);
        const rows = await sql.select(`SELECT ${AGENT_COLUMNS} FROM agents WHERE 1 = 1 ${after.sql} ORDER BY created_at, id ${limitOf(page)}`, after.params);
        return rows.map(toAgent);
      }),

    // Read-modify-write under the row lock, so a concurrent update cannot slip between the
    // activation check and the write (and each real activation change bumps exactly once).
    update: (id, changes, audit, precondition) =>
      inTransaction(db, async (sql) => {
        const current = await selectAgent(sql, id, 'FOR UPDATE');
        if (!current) return null;
        precondition?.(current);
        const next = applyChanges(current, changes);
        const activationChanged = next.isActive !== current.isActive;
        await sql.change(
          `UPDATE agents SET name = ?, description = ?, is_active = ?, expires_at = ?, token_ttl_seconds = ?,
             credential_generation = credential_generation + ?
           WHERE id = ?`,
          [next.name, next.description, next.isActive, next.expiresAt, next.tokenTtlSeconds, activationChanged ? 1 : 0, utf8(id)],
        );
        await insertAuditEvents(sql, audit);
        return selectAgent(sql, id);
      }),

    rotateKey: (id, keyHash, audit, precondition) =>
      inTransaction(db, async (sql) => {
        if (precondition && !(await lockedForCheck(sql, id, precondition))) return null;
        let affectedRows: number;
        try {
          ({ affectedRows } = await sql.change(
            'UPDATE agents SET key_hash = ?, credential_generation = credential_generation + 1 WHERE id = ?',
            [checkKeyHash(keyHash), utf8(id)],
          ));
        } catch (error) {
          throw duplicateAgentError(error, id) ?? error;
        }
        if (affectedRows === 0) return null;
        await insertAuditEvents(sql, audit);
        return selectAgent(sql, id);
      }),

    // The agent row, then its policies. A policy change locks in the opposite order (its policy
    // row, then the agent to bump), so the two can deadlock; the server then rolls one back and
    // inTransaction runs it again.
    delete: (id, audit, precondition) =>
      inTransaction(db, async (sql) => {
        if (precondition && !(await lockedForCheck(sql, id, precondition))) return false;
        const { affectedRows } = await sql.change('DELETE FROM agents WHERE id = ?', [utf8(id)]);
        if (affectedRows === 0) return false;
        await sql.change('DELETE FROM policies WHERE principal_id = ?', [utf8(id)]);
        await insertAuditEvents(sql, audit);
        return true;
      }),

    // Best effort and frequent (every authentication): one autocommit UPDATE, no transaction.
    touch: (id, at) =>
      withConnection(db, async (sql) => {
        await sql.change('UPDATE agents SET last_active_at = ? WHERE id = ?', [at, utf8(id)]);
      }),
  };
}

async function selectAgent(sql: Sql, id: string, lock: '' | 'FOR UPDATE' = ''): Promise<AgentRecord | null> {
  const [row] = await sql.select(`SELECT ${AGENT_COLUMNS} FROM agents WHERE id = ? ${lock}`, [utf8(id)]);
  return row ? toAgent(row) : null;
}

/**
 * Locks the agent's row and runs the precondition on it; false if there is no such agent. Only
 * a guarded change pays for the extra read; the others stay one statement.
 */
async function lockedForCheck(sql: Sql, id: string, precondition: Precondition<AgentRecord>): Promise<boolean> {
  const current = await selectAgent(sql, id, 'FOR UPDATE');
  if (!current) return false;
  precondition(current);
  return true;
}

/** The record with the defined fields of `changes` applied; undefined leaves a field as it is. */
function applyChanges(agent: AgentRecord, changes: AgentChanges): AgentRecord {
  return {
    ...agent,
    name: changes.name ?? agent.name,
    description: changes.description ?? agent.description,
    isActive: changes.isActive ?? agent.isActive,
    expiresAt: changes.expiresAt ?? agent.expiresAt,
    tokenTtlSeconds: changes.tokenTtlSeconds ?? agent.tokenTtlSeconds,
  };
}

/** A clean error for a duplicate id or key; the server's own message would quote the key hash. */
function duplicateAgentError(error: unknown, id: string): Error | undefined {
  const key = duplicateKey(error);
  if (key === undefined) return undefined;
  return new Error(key === 'PRIMARY' ? `agent ${id} already exists` : 'another agent already has this key');
}
