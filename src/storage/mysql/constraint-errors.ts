/**
 * Recognising constraint violations. The server's message for a duplicate quotes the duplicate
 * value (for agents, a key hash), so callers replace such errors with their own message and do
 * not attach the driver error as `cause`.
 */

const ER_DUP_ENTRY = 1062;
/** Inserting or updating a child row whose parent does not exist. */
const ER_NO_REFERENCED_ROW_2 = 1452;

const errnoOf = (error: unknown): unknown => (typeof error === 'object' && error !== null ? (error as { errno?: unknown }).errno : undefined);

/**
 * The name of the unique key a duplicate-entry error is about, or undefined for any other error.
 * MariaDB says `for key 'name'`, MySQL 8 `for key 'table.name'`; only the name is returned.
 */
export function duplicateKey(error: unknown): string | undefined {
  if (errnoOf(error) !== ER_DUP_ENTRY) return undefined;
  const message = (error as { message?: unknown }).message;
  const match = typeof message === 'string' ? /for key '(?:\w+\.)?(\w+)'$/.exec(message) : null;
  return match?.[1] ?? '';
}

export function isMissingParent(error: unknown): boolean {
  return errnoOf(error) === ER_NO_REFERENCED_ROW_2;
}
