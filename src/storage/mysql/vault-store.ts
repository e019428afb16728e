import type { VaultStore } from '../storage.js';
import { insertAuditEvents } from './audit-log.js';
import { createdAfter, limitOf } from './keyset.js';
import { toVault, utf8, VAULT_COLUMNS } from './row-mapping.js';
import { inTransaction, withConnection, type Database } from './transaction.js';

const ER_DUP_ENTRY = 1062;

export function createVaultStore(db: Database): VaultStore {
  return {
    create: (vault, audit) =>
      inTransaction(db, async (sql) => {
        try {
          await sql.change(`INSERT INTO vaults (${VAULT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)`, [
            utf8(vault.id),
            vault.name,
            vault.description,
            vault.createdBy,
            vault.createdByType,
            vault.createdAt,
          ]);
        } catch (error) {
          if ((error as { errno?: unknown }).errno === ER_DUP_ENTRY) throw new Error(`vault ${vault.id} already exists`);
          throw error;
        }
        await insertAuditEvents(sql, audit);
      }),

    get: (id) =>
      withConnection(db, async (sql) => {
        const [row] = await sql.select(`SELECT ${VAULT_COLUMNS} FROM vaults WHERE id = ?`, [utf8(id)]);
        return row ? toVault(row) : null;
      }),

    list: (page) =>
      withConnection(db, async (sql) => {
        const after = createdAfter(page);
        const rows = await sql.select(`SELECT ${VAULT_COLUMNS} FROM vaults WHERE 1 = 1 ${after.sql} ORDER BY created_at, id ${limitOf(page)}`, after.params);
        return rows.map(toVault);
      }),

    // The vault's secrets, versions and policies go with it (ON DELETE CASCADE); its audit events
    // stay. Agents its policies named lose those grants, so their credential generation moves on
    // first, while the policies still say who they are (a no-op when there is no such vault).
    delete: (id, audit) =>
      inTransaction(db, async (sql) => {
        await sql.change(
          `UPDATE agents SET credential_generation = credential_generation + 1
           WHERE id IN (SELECT principal_id FROM policies WHERE vault_id = ?)`,
          [utf8(id)],
        );
        const { affectedRows } = await sql.change('DELETE FROM vaults WHERE id = ?', [utf8(id)]);
        if (affectedRows === 0) return false;
        await insertAuditEvents(sql, audit);
        return true;
      }),
  };
}
