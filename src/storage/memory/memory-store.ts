import type {
  AppendOptions,
  AuditRecord,
  DueRotation,
  ExpiredVersion,
  PathSchedule,
  SecretStage,
  SecretStore,
  SecretVersionRecord,
  Storage,
  VaultRecord,
  VaultStore,
} from '../storage.js';
import { compareBytes, compareCreated, pageOf } from '../path-order.js';
import { VaultMissingError, VersionMismatchError } from '../storage-errors.js';
import { createMemoryAuditStore } from './memory-audit-store.js';
import { createMemoryIdempotencyStore } from './memory-idempotency-store.js';
import { createMemoryIdentityStores } from './memory-identity-stores.js';
import { createMemoryLeaseStore } from './memory-lease-store.js';
import { createMemorySealedStores } from './memory-sealed-store.js';

/** Per-path state: the version counter survives deletes so numbers are never reused. */
interface PathState {
  lastVersion: number;
  deleted: boolean;
  versions: SecretVersionRecord[];
  schedule: PathSchedule;
  /** Versions whose expiry has been recorded (SecretStore.recordExpiry). */
  expiryRecorded: Set<number>;
}

const NO_SCHEDULE: PathSchedule = { policy: null, nextRotationAt: null, lastRotatedAt: null };

/**
 * In-memory storage for dev mode and fast tests. Single-threaded JavaScript makes each method
 * atomic as long as it does not await between reading and writing, which none of them do.
 * Records are copied in and out so callers can never mutate stored state.
 */
export function createMemoryStorage({ now = Date.now }: { now?: () => number } = {}) {
  const vaults = new Map<string, VaultRecord>();
  const paths = new Map<string, Map<string, PathState>>();
  const leases = createMemoryLeaseStore(now);
  const audit = createMemoryAuditStore(leases.holds);
  const record = (events: AuditRecord[]) => audit.record(events);
  const identity = createMemoryIdentityStores(record);

  const pathsOf = (vaultId: string) => {
    let byPath = paths.get(vaultId);
    if (!byPath) paths.set(vaultId, (byPath = new Map()));
    return byPath;
  };
  const live = (state: PathState) => state.versions.filter((v) => !v.deleted);
  const inStage = (state: PathState, stage: SecretStage) => live(state).find((v) => v.stage === stage);
  /** The old current becomes previous; the old previous loses its stage. */
  const shiftCurrent = (state: PathState) => {
    const [current, previous] = [inStage(state, 'current'), inStage(state, 'previous')];
    if (previous) previous.stage = null;
    if (current) current.stage = 'previous';
    return current?.version ?? null;
  };
  const copy = (v: SecretVersionRecord): SecretVersionRecord => structuredClone(v);

  const vaultStore: VaultStore = {
    async create(vault, audit) {
      if (vaults.has(vault.id)) throw new Error(`vault ${vault.id} already exists`);
      vaults.set(vault.id, { ...vault });
      record(audit);
    },
    async get(id) {
      const vault = vaults.get(id);
      return vault ? { ...vault } : null;
    },
    async list(page) {
      const sorted = [...vaults.values()].sort(compareCreated);
      return pageOf(sorted, page, (v, after) => compareCreated(v, after) > 0).map((v) => ({ ...v }));
    },
    async delete(id, audit) {
      if (!vaults.delete(id)) return false;
      paths.delete(id);
      identity.deleteVaultPolicies(id);
      record(audit);
      return true;
    },
  };

  /** Compare-and-set: throws unless the path's newest version number is `ifVersion` (when given). */
  function requireNewest(vaultId: string, path: string, ifVersion: number | undefined): void {
    if (ifVersion === undefined) return;
    const actual = paths.get(vaultId)?.get(path)?.lastVersion ?? 0;
    if (actual !== ifVersion) throw new VersionMismatchError(ifVersion, actual);
  }

  /** One append; `claim` (for scheduled rotations) may refuse it before anything is written. */
  function appendTo(
    vaultId: string,
    path: string,
    build: Parameters<SecretStore['append']>[2],
    audit: Parameters<SecretStore['append']>[3],
    claim: (state: PathState) => boolean = () => true,
    { withPrevious = true, stage = 'current' }: AppendOptions = {},
  ): SecretVersionRecord | null {
    if (!vaults.has(vaultId)) throw new VaultMissingError(vaultId);
    const byPath = pathsOf(vaultId);
    const state = byPath.get(path) ?? { lastVersion: 0, deleted: false, versions: [], schedule: { ...NO_SCHEDULE }, expiryRecorded: new Set<number>() };
    const version = state.lastVersion + 1;
    const previous = withPrevious ? (live(state).at(-1) ?? null) : null;
    // build may throw: nothing has been changed yet.
    const { schedule, ...fields } = build({ version, previous: previous && copy(previous) });
    if (!claim(state)) return null;
    const created: SecretVersionRecord = {
      ...fields,
      stage,
        vaultId,
        path,
        version,
      accessCount: 0,
      disabled: false,
      deleted: false,
    };
    const recorded = audit(copy(created));
    if (stage === 'current') shiftCurrent(state);
    else {
      const pending = inStage(state, 'pending');
      if (pending) pending.stage = null;
    }
    if (schedule !== undefined) {
      state.schedule = schedule ? { ...state.schedule, policy: { ...schedule.policy }, nextRotationAt: schedule.nextRotationAt } : { ...NO_SCHEDULE };
    }
    state.versions.push(created);
    state.lastVersion = version;
    state.deleted = false;
    byPath.set(path, state);
    record(recorded);
    return copy(created);
  }

  const secretStore: SecretStore = {
    async append(vaultId, path, build, audit, options) {
      return appendTo(vaultId, path, build, audit, undefined, options)!;
    },

    async rotateDue({ vaultId, path, dueAt, nextAt, at, stage }, build, audit) {
      if (!vaults.has(vaultId)) return null;
      return appendTo(vaultId, path, build, audit, (state) => {
        if (state.deleted || state.schedule.nextRotationAt?.getTime() !== dueAt.getTime()) return false;
        state.schedule = { ...state.schedule, nextRotationAt: new Date(nextAt), lastRotatedAt: new Date(at) };
        return true;
      }, { stage });
    },

    async dueRotations(at, limit) {
      const due: DueRotation[] = [];
      for (const [vaultId, byPath] of paths) {
        for (const [path, state] of byPath) {
          const { policy, nextRotationAt } = state.schedule;
          if (!state.deleted && policy && nextRotationAt && nextRotationAt.getTime() <= at.getTime()) {
            due.push({ vaultId, path, dueAt: new Date(nextRotationAt), policy: { ...policy } });
          }
        }
      }
      return due.sort((a, b) => a.dueAt.getTime() - b.dueAt.getTime()).slice(0, limit);
    },

    async schedule(vaultId, path) {
      const state = paths.get(vaultId)?.get(path);
      return state ? structuredClone(state.schedule) : null;
    },

    async lookup(vaultId, path, selector) {
      const state = paths.get(vaultId)?.get(path);
      if (!state) return { exists: false, deleted: false, version: null };
      const readable = live(state).filter((v) => !v.disabled);
      const found =
        selector.kind === 'latest'
          ? (readable.find((v) => v.stage === 'current') ?? readable.filter((v) => v.stage !== 'pending').at(-1))
          : selector.kind === 'stage'
            ? inStage(state, selector.stage)
            : state.versions.find((v) => v.version === selector.version);
      return { exists: true, deleted: state.deleted, version: found ? copy(found) : null };
    },

    async consumeRead(vaultId, path, version, audit) {
      const found = paths.get(vaultId)?.get(path)?.versions.find((v) => v.version === version);
      if (!found || found.disabled || found.deleted) return false;
      if (found.maxAccessCount > 0 && found.accessCount >= found.maxAccessCount) return false;
      found.accessCount += 1;
      record(typeof audit === 'function' ? audit({ accessCount: found.accessCount }) : audit);
      return true;
    },

    async unrecordedExpiries(at, limit) {
      const expired: ExpiredVersion[] = [];
      for (const [vaultId, byPath] of paths) {
        for (const [path, state] of byPath) {
          for (const v of state.versions) {
            if (v.expiresAt && v.expiresAt.getTime() <= at.getTime() && !state.expiryRecorded.has(v.version)) {
              expired.push({ vaultId, path, version: v.version, expiresAt: new Date(v.expiresAt) });
            }
          }
        }
      }
      return expired.sort((a, b) => a.expiresAt.getTime() - b.expiresAt.getTime()).slice(0, limit);
    },

    async recordExpiry(vaultId, path, version, at, audit) {
      const state = paths.get(vaultId)?.get(path);
      const found = state?.versions.find((v) => v.version === version);
      if (!state || !found?.expiresAt || found.expiresAt.getTime() > at.getTime() || state.expiryRecorded.has(version)) return false;
      state.expiryRecorded.add(version);
      if (found.deleted) return false;
      record(audit);
      return true;
    },

    async listVersions(vaultId, path, page) {
      const state = paths.get(vaultId)?.get(path);
      return state ? pageOf(live(state).reverse(), page, (v, before) => v.version < before).map(copy) : [];
    },

    async listLatest(vaultId, prefix, page) {
      const byPath = paths.get(vaultId);
      if (!byPath) return [];
      const prefixBytes = Buffer.from(prefix);
      const newest = [...byPath.entries()]
        .filter(([path, state]) => !state.deleted && Buffer.from(path).subarray(0, prefixBytes.length).equals(prefixBytes))
        .sort(([a], [b]) => compareBytes(a, b))
        .flatMap(([, state]) => {
          const latest = live(state).at(-1);
          return latest ? [latest] : [];
        });
      return pageOf(newest, page, (v, after) => compareBytes(v.path, after) > 0).map(copy);
    },

    async setDisabled(vaultId, path, version, disabled, audit, ifVersion) {
      requireNewest(vaultId, path, ifVersion);
      const found = paths.get(vaultId)?.get(path)?.versions.find((v) => v.version === version);
      if (!found || found.deleted) return false;
      found.disabled = disabled;
      record(audit);
      return true;
    },

    async promote(vaultId, path, version, audit, ifVersion) {
      requireNewest(vaultId, path, ifVersion);
      const state = paths.get(vaultId)?.get(path);
      const found = state && !state.deleted ? live(state).find((v) => v.version === version) : undefined;
      if (!state || !found) return { kind: 'missing' };
      if (found.disabled) return { kind: 'disabled' };
      if (found.stage === 'current') return { kind: 'unchanged', version: copy(found) };
      found.stage = null;
      const replaced = shiftCurrent(state);
      found.stage = 'current';
      record(audit({ replaced }));
      return { kind: 'promoted', version: copy(found), replaced };
    },

    async delete(vaultId, path, audit, ifVersion) {
      requireNewest(vaultId, path, ifVersion);
      const state = paths.get(vaultId)?.get(path);
      if (!state || state.deleted) return false;
      for (const v of state.versions) {
        v.deleted = true;
        v.ciphertext = null;
        v.stage = null;
      }
      state.deleted = true;
      state.schedule = { ...NO_SCHEDULE };
      record(audit);
      return true;
    },
  };

  const canaries = new Map<string, Uint8Array>();
  const sealedStores = createMemorySealedStores(function* () {
    for (const byPath of paths.values()) for (const state of byPath.values()) yield* state.versions;
  });

  const storage = {
    vaults: vaultStore,
    secrets: secretStore,
    agents: identity.agents,
    policies: identity.policies,
    audit: audit.store,
    leases: leases.store,
    idempotency: createMemoryIdempotencyStore(),
    /** The raw audit rows, for tests that tamper with them. */
    auditRows: audit.rows,
    keyCanaries: {
      async list() {
        return [...canaries].map(([keyId, canary]) => ({ keyId, canary: Uint8Array.from(canary) }));
      },
      async add(keyId, canary) {
        if (!canaries.has(keyId)) canaries.set(keyId, Uint8Array.from(canary));
      },
      async remove(keyId) {
        canaries.delete(keyId);
      },
    },
    sealed: sealedStores.sealed,
    sealedKeys: sealedStores.sealedKeys,
    async appendAudit(events) {
      record(events);
    },
    async ping() {},
    async stats() {
      return { oldestUnsealedAuditAt: audit.oldestPendingAt() };
    },
    async close() {},
  } satisfies Storage & { auditRows: unknown };
  return storage;
}
