import { VaultMissingError } from '../storage-errors.js';
import type { PolicyChanges, PolicyRecord, PolicyStore } from '../storage.js';
import { insertAuditEvents } from './audit-log.js';
import { duplicateKey, isMissingParent } from './constraint-errors.js';
import { POLICY_COLUMNS, policyParams, toPolicy } from './identity-rows.js';
import type { Sql } from './pool.js';
import { createdAfter, limitOf } from './keyset.js';
import { utf8 } from './row-mapping.js';
import { inTransaction, withConnection, type Database } from './transaction.js';

const PLACEHOLDERS = POLICY_COLUMNS.split(',').map(() => '?').join(', ');

/**
 * Every change bumps the credential generation of the agent the policy names, in the same
 * transaction, so tokens issued under the old grants stop working the moment the change commits.
 */
export function createPolicyStore(db: Database): PolicyStore {
  return {
    create: (policy, audit) =>
      inTransaction(db, async (sql) => {
        try {
          await sql.change(`INSERT INTO policies (${POLICY_COLUMNS}) VALUES (${PLACEHOLDERS})`, policyParams(policy));
        } catch (error) {
          if (duplicateKey(error) !== undefined) throw new Error(`policy ${policy.id} already exists`);
          if (isMissingParent(error)) throw new VaultMissingError(policy.vaultId);
          throw error;
        }
        await bumpGeneration(sql, policy.principalId);
        await insertAuditEvents(sql, audit);
      }),

    list: (vaultId, page) =>
      withConnection(db, async (sql) => {
        const after = createdAfter(page);
        const rows = await sql.select(
          `SELECT ${POLICY_COLUMNS} FROM policies WHERE vault_id = ? ${after.sql} ORDER BY created_at, id ${limitOf(page)}`,
          [utf8(vaultId), ...after.params],
        );
        return rows.map(toPolicy);
      }),

    listFor: (vaultId, principalId) =>
      withConnection(db, async (sql) => {
        const rows = await sql.select(
          `SELECT ${POLICY_COLUMNS} FROM policies WHERE vault_id = ? AND principal_id = ? ORDER BY created_at, id`,
          [utf8(vaultId), utf8(principalId)],
        );
        return rows.map(toPolicy);
      }),

    update: (vaultId, id, changes, audit, precondition) =>
      inTransaction(db, async (sql) => {
        const current = await selectPolicy(sql, vaultId, id, 'FOR UPDATE');
        if (!current) return null;
        precondition?.(current);
        const next = applyChanges(current, changes);
        await sql.change(
          'UPDATE policies SET permissions = ?, conditions = ?, expires_at = ?, effect = ?, priority = ? WHERE id = ?',
          [
            JSON.stringify(next.permissions),
            next.conditions === null ? null : JSON.stringify(next.conditions),
            next.expiresAt,
            next.effect,
            next.priority,
            utf8(id),
          ],
        );
        await bumpGeneration(sql, current.principalId);
        await insertAuditEvents(sql, audit);
        return selectPolicy(sql, vaultId, id);
      }),

    delete: (vaultId, id, audit, precondition) =>
      inTransaction(db, async (sql) => {
        const current = await selectPolicy(sql, vaultId, id, 'FOR UPDATE');
        if (!current) return false;
        precondition?.(current);
        await sql.change('DELETE FROM policies WHERE id = ?', [utf8(id)]);
        await bumpGeneration(sql, current.principalId);
        await insertAuditEvents(sql, audit);
        return true;
      }),
  };
}

/** Matches nothing (and is no error) when the principal is not an agent. */
async function bumpGeneration(sql: Sql, principalId: string): Promise<void> {
  await sql.change('UPDATE agents SET credential_generation = credential_generation + 1 WHERE id = ?', [utf8(principalId)]);
}

/** A policy of another vault is treated as absent, so a vault-scoped caller cannot reach it. */
async function selectPolicy(sql: Sql, vaultId: string, id: string, lock: '' | 'FOR UPDATE' = ''): Promise<PolicyRecord | null> {
  const [row] = await sql.select(`SELECT ${POLICY_COLUMNS} FROM policies WHERE id = ? AND vault_id = ? ${lock}`, [utf8(id), utf8(vaultId)]);
  return row ? toPolicy(row) : null;
}

function applyChanges(policy: PolicyRecord, changes: PolicyChanges): PolicyRecord {
  return {
    ...policy,
    permissions: changes.permissions ?? policy.permissions,
    conditions: changes.conditions ?? policy.conditions,
    expiresAt: changes.expiresAt ?? policy.expiresAt,
    effect: changes.effect ?? policy.effect,
    priority: changes.priority ?? policy.priority,
  };
}
