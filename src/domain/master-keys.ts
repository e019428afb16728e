import type { AccessControl } from './access-control.js';
import { BarrierError, type Barrier } from '../crypto/barrier.js';
import type { Keyring } from '../crypto/keyring.js';
import { auditChainKey } from './audit-chain.js';
import type { SealedKind, SealedRef, Storage } from '../storage/storage.js';
import { auditEvent } from './audit-event.js';
import type { CallContext } from './principal.js';
import { contextOf, sealedKeyContext } from './sealing-contexts.js';
import { requireIntRange } from './validation.js';

/** The sealed-key purpose under which a retired master key's audit-chain key is kept. */
export const AUDIT_CHAIN_KEY_PURPOSE = 'audit-chain';

export interface MasterKeyUsage {
  keyId: string;
  current: boolean;
  configured: boolean;
  secretVersions: number;
  sealedKeys: number;
  protectedItems: number;
  hasCanary: boolean;
}

export interface RewrapProgress {
  rewrapped: number;
  skipped: number;
  failed: number;
  remaining: number;
  complete: boolean;
  currentKeyId: string;
  keys: MasterKeyUsage[];
  retiredKeyIds: string[];
}

export interface RewrapOptions {
  /** 0 means the default. */
  batchSize: number;
  /** 0 means until done. */
  maxBatches: number;
}

export const REWRAP_DEFAULT_BATCH = 500;
export const REWRAP_MAX_BATCH = 5000;

/** Sealed keys first: they are few, and they carry the retired keys' audit-chain keys. */
const KINDS: readonly SealedKind[] = ['sealed_key', 'secret_version'];

export interface MasterKeyServiceDeps {
  storage: Pick<Storage, 'sealed' | 'sealedKeys' | 'keyCanaries' | 'appendAudit'>;
  barrier: Barrier;
  keyring: Keyring;
  access: AccessControl;
  now: () => Date;
}

/**
 * Master-key rotation after the fact: moves every stored data key under the current master key
 * (envelope re-wrap, values untouched), and tells what each key id still protects, so an old key
 * can be dropped from the configuration once it protects nothing.
 *
 * Rolling over what is derived from master keys:
 * - Agent tokens name the master key they were signed with (JWT `kid`) and are verified with
 *   that key while it is configured; new ones are signed with the current key. A token signed
 *   by a removed key fails (401) and its agent exchanges its API key again.
 * - Audit links record the id of the key they were made with. A rewrap first keeps each old
 *   configured key's audit-chain key sealed under the current master key (sealed_keys), so
 *   links made under a key removed later still verify.
 */
export function createMasterKeyService({ storage, barrier, keyring, access, now }: MasterKeyServiceDeps) {
  async function usage(): Promise<MasterKeyUsage[]> {
    const [counts, canaries] = await Promise.all([storage.sealed.countByKey(), storage.keyCanaries.list()]);
    const current = keyring.current.id;
    const ids = [...new Set([current, ...keyring.ids(), ...counts.map((c) => c.keyId), ...canaries.map((c) => c.keyId)])];
    return ids.map((keyId) => {
      const count = (kind: SealedKind) => counts.filter((c) => c.keyId === keyId && c.kind === kind).reduce((n, c) => n + c.count, 0);
      const secretVersions = count('secret_version');
      const sealedKeys = count('sealed_key');
      return {
        keyId,
        current: keyId === current,
        configured: keyring.byId(keyId) !== undefined,
        secretVersions,
        sealedKeys,
        protectedItems: secretVersions + sealedKeys,
        hasCanary: canaries.some((c) => c.keyId === keyId),
      };
    });
  }

  /** Keeps each configured old key's audit-chain key, sealed under the current master key. */
  async function keepAuditKeys(): Promise<void> {
    for (const keyId of keyring.ids()) {
      if (keyId === keyring.current.id) continue;
      const derived = auditChainKey(keyring.byId(keyId)!);
      await storage.sealedKeys.add(AUDIT_CHAIN_KEY_PURPOSE, keyId, barrier.seal(derived, sealedKeyContext(AUDIT_CHAIN_KEY_PURPOSE, keyId)));
    }
  }

  return {
    async listKeys(context: CallContext): Promise<{ currentKeyId: string; keys: MasterKeyUsage[] }> {
      access.requireOperator(context, 'list master keys');
      return { currentKeyId: keyring.current.id, keys: await usage() };
    },

    /**
     * One rewrap run. Each batch lists items not under the current key after the last one seen
     * (keyset order, so every item is visited once per run) and replaces each only if it is still
     * the blob read. A stopped run leaves every item either old or re-wrapped, never half: the
     * next run picks up what is left.
     */
    async rewrap(context: CallContext, options: RewrapOptions): Promise<RewrapProgress> {
      access.requireOperator(context, 'rewrap stored data keys');
      const batchSize = options.batchSize === 0 ? REWRAP_DEFAULT_BATCH : requireIntRange('batch_size', options.batchSize, 1, REWRAP_MAX_BATCH);
      const maxBatches = requireIntRange('max_batches', options.maxBatches, 0, 1_000_000_000);
      const currentKeyId = keyring.current.id;
      await keepAuditKeys();

      let rewrapped = 0;
      let skipped = 0;
      let failed = 0;
      let batches = 0;
      let stopped = false;
      for (const kind of KINDS) {
        let after: SealedRef | null = null;
        while (!stopped) {
          if (maxBatches > 0 && batches >= maxBatches) {
            stopped = true;
            break;
          }
          const page = await storage.sealed.listNotWrappedBy(kind, currentKeyId, batchSize, after);
          if (page.length === 0) break;
          batches++;
          for (const item of page) {
            let next: Uint8Array;
            try {
              next = barrier.rewrap(item.blob, contextOf(item.ref));
            } catch (error) {
              if (!(error instanceof BarrierError)) throw error;
              failed++;
              continue;
            }
            if (await storage.sealed.replace(item.ref, item.blob, next)) rewrapped++;
            else skipped++;
          }
          after = page[page.length - 1]!.ref;
          if (page.length < batchSize) break;
        }
      }

      // Recount after the run: concurrent runs and writes are reflected, not this run's tally.
      let keys = await usage();
      const retiredKeyIds: string[] = [];
      for (const key of keys) {
        if (!key.current && key.hasCanary && key.protectedItems === 0 && key.configured) {
          await storage.keyCanaries.remove(key.keyId);
          retiredKeyIds.push(key.keyId);
        }
      }
      if (retiredKeyIds.length > 0) keys = keys.map((k) => (retiredKeyIds.includes(k.keyId) ? { ...k, hasCanary: false } : k));
      const remaining = keys.filter((k) => !k.current).reduce((n, k) => n + k.protectedItems, 0);

      await storage.appendAudit([
        auditEvent(context, now(), {
          action: 'keys.rewrap',
          resourceType: 'master_key',
          resourceId: currentKeyId,
          outcome: remaining === 0 ? 'success' : 'partial',
          details: { rewrapped, skipped, failed, remaining, retired_key_ids: retiredKeyIds },
        }),
      ]);
      return { rewrapped, skipped, failed, remaining, complete: remaining === 0, currentKeyId, keys, retiredKeyIds };
    },
  };
}

export type MasterKeyService = ReturnType<typeof createMasterKeyService>;

/**
 * The audit-chain keys of retired master keys, opened with the configured keys, by master key id.
 * Read at start, so an instance started without an old key still verifies the links it made.
 */
export async function openRetiredAuditKeys(storage: Pick<Storage, 'sealedKeys'>, barrier: Barrier): Promise<Map<string, Uint8Array>> {
  const keys = new Map<string, Uint8Array>();
  for (const { keyId, blob } of await storage.sealedKeys.list(AUDIT_CHAIN_KEY_PURPOSE)) {
    keys.set(keyId, barrier.open(blob, sealedKeyContext(AUDIT_CHAIN_KEY_PURPOSE, keyId)));
  }
  return keys;
}
