import type { KeyCanaryStore } from '../storage/storage.js';
import { encodeContext, type Barrier } from './barrier.js';
import type { Keyring } from './keyring.js';

const CANARY = new TextEncoder().encode('vault key canary');
const canaryContext = (keyId: string) => encodeContext('key-canary', keyId);

export class KeyCheckError extends Error {
  override readonly name = 'KeyCheckError';
}

/**
 * Refuses to start when the configured keys cannot open what storage holds: every key that ever
 * sealed data left a canary, and each must be configured and open its canary. Then records the
 * current key's canary, so a later start without this key is refused too.
 */
export async function checkKeysAgainstStorage(keyring: Keyring, barrier: Barrier, canaries: KeyCanaryStore): Promise<void> {
  for (const { keyId, canary } of await canaries.list()) {
    if (!keyring.byId(keyId)) {
      throw new KeyCheckError(
        `data in this database was sealed by master key ${keyId}, which is not configured: ` +
          'set VAULT_MASTER_KEY to it, or keep it in VAULT_OLD_MASTER_KEYS after a rotation',
      );
    }
    let opened: Uint8Array;
    try {
      opened = barrier.open(canary, canaryContext(keyId));
    } catch {
      throw new KeyCheckError(`master key ${keyId} cannot open its canary: the key or the stored canary is wrong`);
    }
    if (Buffer.compare(Buffer.from(opened), Buffer.from(CANARY)) !== 0) {
      throw new KeyCheckError(`master key ${keyId} opened a canary with unexpected content`);
    }
  }
  await canaries.add(keyring.current.id, barrier.seal(CANARY, canaryContext(keyring.current.id)));
}
