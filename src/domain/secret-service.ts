import { randomUUID } from 'node:crypto';
import type { AccessControl } from './access-control.js';
import { BarrierError, type Barrier } from '../crypto/barrier.js';
import { CHARSETS, isCharset, randomString } from '../crypto/random-string.js';
import { VaultMissingError, VersionMismatchError } from '../storage/storage-errors.js';
import type { NewSecretVersion, PathSchedule, RotationSchedule, SecretVersionRecord, Storage, VersionSelector } from '../storage/storage.js';
import { auditEvent } from './audit-event.js';
import { secretContext } from './sealing-contexts.js';
import { dataLoss, failedPrecondition, gone, invalidArgument, notFound, VERSION_MISMATCH } from './errors.js';
import { createPageTokens, isNumber, isString, listPage, type Page, type PageRequest, type PageTokens } from './paging.js';
import { SYSTEM, type CallContext } from './principal.js';
import type { VaultService } from './vault-service.js';
import {
  quote,
  requireFuture,
  requireIfVersion,
  requireIntRange,
  requireMetadata,
  requirePath,
  requireReadStage,
  requireSecretType,
  requireUuid,
  requireVersion,
  requireWriteStage,
} from './validation.js';

/** A version as clients see it: everything but the ciphertext. */
export type SecretVersionView = Omit<SecretVersionRecord, 'ciphertext'>;
/** A version with its decrypted value. */
export type SecretWithValue = SecretVersionView & { value: string };

export interface PutSecretInput {
  vaultId: string;
  path: string;
  value: string;
  type: string;
  metadata: unknown;
  expiresAt: Date | undefined;
  maxAccessCount: number;
  /** Empty or 'current' makes the version current; 'pending' stages it (see records.ts SecretStage). */
  stage?: string;
  /** Undefined leaves the path's schedule alone; an interval of 0 removes it. */
  rotationPolicy?: RotationPolicyInput;
  /** Compare-and-set: write only if the path's newest version is this one (0: none yet). */
  ifVersion?: number;
}

export interface RotationPolicyInput {
  intervalSeconds: number;
  length?: number | undefined;
  charset: string;
  stage: string;
}

export interface RotateSecretInput {
  vaultId: string;
  path: string;
  /** Characters to generate; undefined means the default. */
  length: number | undefined;
  charset: string;
  type: string;
  /** Replaces the previous version's metadata when given. */
  metadata: unknown;
  /** As for put. */
  stage?: string;
  /** When given, replaces the previous version's lifetime. */
  expiresAt: Date | undefined;
  /** When given, replaces the previous version's read budget (0: unlimited). */
  maxAccessCount: number | undefined;
  /** As for put. */
  ifVersion?: number;
}

export const ROTATE_DEFAULT_LENGTH = 32;
export const ROTATE_LENGTH = { min: 8, max: 1024 } as const;

/** The vault's rules for secrets: versions, reads and their budgets, rotation, delete. */
export interface SecretService {
  put(context: CallContext, input: PutSecretInput): Promise<SecretVersionView>;
  rotate(context: CallContext, input: RotateSecretInput): Promise<SecretVersionView>;
  /** The latest readable version, or with `stage` the version in that stage. */
  get(context: CallContext, vaultId: string, path: string, stage?: string): Promise<SecretWithValue>;
  getVersion(context: CallContext, vaultId: string, path: string, version: number): Promise<SecretWithValue>;
  /** One page of the vault's secrets the caller may read, by path. */
  list(context: CallContext, vaultId: string, prefix: string, page?: PageRequest): Promise<Page<SecretVersionView>>;
  /** One page of a secret's versions, newest first. */
  listVersions(context: CallContext, vaultId: string, path: string, page?: PageRequest): Promise<Page<SecretVersionView>>;
  /** `ifVersion` here and below: compare-and-set, as for put (a mismatch is FAILED_PRECONDITION VERSION_MISMATCH). */
  setDisabled(context: CallContext, vaultId: string, path: string, version: number, disabled: boolean, ifVersion?: number): Promise<void>;
  /** The path's rotation schedule (`read` permission); policy null without one. */
  schedule(context: CallContext, vaultId: string, path: string): Promise<PathSchedule>;
  /**
   * Runs one scheduled rotation as the system actor, if this call wins the due time `dueAt`
   * (false when another instance already did, or the schedule changed).
   */
  rotateScheduled(vaultId: string, path: string, dueAt: Date): Promise<boolean>;
  /** Makes a version current (the replaced one becomes previous); promoting previous rolls back. */
  promote(context: CallContext, vaultId: string, path: string, version: number, ifVersion?: number): Promise<SecretVersionView>;
  delete(context: CallContext, vaultId: string, path: string, ifVersion?: number): Promise<void>;
}

export interface SecretServiceDeps {
  storage: Storage;
  barrier: Barrier;
  access: AccessControl;
  vaults: Pick<VaultService, 'require'>;
  now: () => Date;
  /** Largest value accepted, in UTF-8 bytes. */
  maxValueBytes: number;
  /** Shortest rotation_policy interval accepted; default 60. */
  minRotationIntervalSeconds?: number;
  /** Page tokens; share one key across instances (app.ts derives it from the master key). */
  pages?: PageTokens;
}

const FIRST_PAGE: PageRequest = { pageSize: 0, pageToken: '' };

export function createSecretService({ storage, barrier, access, vaults, now, maxValueBytes, minRotationIntervalSeconds = 60, pages = createPageTokens() }: SecretServiceDeps): SecretService {
  /** Validates ids, authorizes, and for writes checks the vault exists. */
  async function admit(context: CallContext, vaultId: string, path: string, action: 'read' | 'write' | 'rotate' | 'delete') {
    requireUuid('vault_id', vaultId);
    requirePath(path);
    await access.requireSecretAccess(context, vaultId, action, path);
  }

  function requireGenerated(length: number | undefined, charset: string) {
    const checkedLength = requireIntRange('length', length ?? ROTATE_DEFAULT_LENGTH, ROTATE_LENGTH.min, ROTATE_LENGTH.max);
    const checkedCharset = charset || 'hex';
    if (!isCharset(checkedCharset)) throw invalidArgument(`charset ${quote(checkedCharset)} is not one of ${Object.keys(CHARSETS).join(', ')}`);
    return { length: checkedLength, charset: checkedCharset };
  }

  /** A validated schedule, first due one interval from now; null (remove) for interval 0. */
  function requireSchedule(input: RotationPolicyInput, at: Date): { policy: RotationSchedule; nextRotationAt: Date } | null {
    if (input.intervalSeconds === 0) return null;
    const intervalSeconds = requireIntRange('rotation_policy.interval_seconds', input.intervalSeconds, minRotationIntervalSeconds, 10 * 366 * 24 * 3600);
    const { length, charset } = requireGenerated(input.length, input.charset);
    const policy = { intervalSeconds, length, charset, stage: requireWriteStage(input.stage) };
    return { policy, nextRotationAt: new Date(at.getTime() + intervalSeconds * 1000) };
  }

  async function write(
    context: CallContext,
    input: { vaultId: string; path: string; action: string; ifVersion: number | undefined; usesPrevious: boolean; stage: 'current' | 'pending' },
    build: (
      previous: SecretVersionRecord | null,
      at: Date,
    ) => {
      value: string;
      type: string;
      metadata: SecretVersionRecord['metadata'];
      expiresAt: Date | null;
      maxAccessCount: number;
      schedule?: NewSecretVersion['schedule'];
    },
  ): Promise<SecretVersionView> {
    const at = now();
    const created = await storage.secrets.append(
      input.vaultId,
      input.path,
      ({ version, previous }) => {
        // Under the path's counter row: the number before this one is the path's newest.
        if (input.ifVersion !== undefined && version - 1 !== input.ifVersion) throw new VersionMismatchError(input.ifVersion, version - 1);
        const fields = build(previous, at);
        return {
          id: randomUUID(),
          type: fields.type,
          metadata: fields.metadata,
          ciphertext: barrier.seal(Buffer.from(fields.value, 'utf8'), secretContext(input.vaultId, input.path, version)),
          createdBy: context.principal.id,
          createdAt: at,
          expiresAt: fields.expiresAt,
          maxAccessCount: fields.maxAccessCount,
          ...(fields.schedule === undefined ? {} : { schedule: fields.schedule }),
        };
      },
      (version) => [
        auditEvent(context, at, {
          action: input.action,
          resourceType: 'secret',
          resourceId: input.path,
          vaultId: input.vaultId,
          // The stage only when it is not the default, so audit records of plain writes are as before.
          details: version.stage === 'pending' ? { version: version.version, stage: 'pending' } : { version: version.version },
        }),
      ],
      { withPrevious: input.usesPrevious, stage: input.stage },
    ).catch((error: unknown) => {
      throw error instanceof VaultMissingError ? notFound(`vault ${input.vaultId} does not exist`) : asMismatch(error, input);
    });
    return view(created);
  }

  /** A compare-and-set miss as clients see it; any other error unchanged. */
  function asMismatch(error: unknown, where: { vaultId: string; path: string }): unknown {
    if (!(error instanceof VersionMismatchError)) return error;
    const newest = error.actual === 0 ? 'has no version' : `has newest version ${error.actual}`;
    return failedPrecondition(VERSION_MISMATCH, `secret ${quote(where.path)} ${newest}, not ${error.expected} as if_version expects; nothing was changed`, {
      path: where.path,
      vault_id: where.vaultId,
      expected_version: String(error.expected),
      current_version: String(error.actual),
    });
  }

  /** Runs a store call that checks `ifVersion`, turning a miss into FAILED_PRECONDITION. */
  async function guarded<T>(where: { vaultId: string; path: string }, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw asMismatch(error, where);
    }
  }

  /** Resolves a selector to a readable version, spends one read, and decrypts. */
  async function read(context: CallContext, vaultId: string, path: string, selector: VersionSelector): Promise<SecretWithValue> {
    await admit(context, vaultId, path, 'read');
    const { exists, deleted, version } = await storage.secrets.lookup(vaultId, path, selector);
    if (!exists) {
      await vaults.require(context, vaultId);
      throw notFound(`secret ${quote(path)} does not exist in vault ${vaultId}`);
    }
    const where = { path, vault_id: vaultId };
    if (selector.kind === 'latest') {
      if (deleted) throw gone('SECRET_DELETED', `secret ${quote(path)} has been deleted`, where);
      if (!version) throw gone('SECRET_NO_READABLE_VERSION', `secret ${quote(path)} has no readable version: every version is disabled or pending`, where);
    } else {
      if (!version && selector.kind === 'stage') {
        if (deleted) throw gone('SECRET_DELETED', `secret ${quote(path)} has been deleted`, where);
        throw notFound(`secret ${quote(path)} has no ${selector.stage} version`);
      }
      if (!version) throw notFound(`secret ${quote(path)} has no version ${selector.kind === 'number' ? selector.version : ''}`);
      if (version.deleted) throw gone('SECRET_DELETED', `secret ${quote(path)} has been deleted`, where);
      if (version.disabled) {
        throw gone('SECRET_VERSION_DISABLED', `version ${version.version} of secret ${quote(path)} is disabled`, {
          ...where,
          version: String(version.version),
        });
      }
    }
    const at = now();
    const which = { ...where, version: String(version.version) };
    if (version.expiresAt && version.expiresAt.getTime() <= at.getTime()) {
      throw gone('SECRET_VERSION_EXPIRED', `version ${version.version} of secret ${quote(path)} expired at ${version.expiresAt.toISOString()}`, which);
    }
    const exhausted = () =>
      gone('SECRET_VERSION_EXHAUSTED', `version ${version.version} of secret ${quote(path)} has used all ${version.maxAccessCount} of its reads`, which);
    if (version.maxAccessCount > 0 && version.accessCount >= version.maxAccessCount) throw exhausted();

    // Decrypt before spending a read, so a read is never spent on a value that cannot be returned.
    const value = open(version);
    const events = [
      auditEvent(context, at, { action: 'secret.read', resourceType: 'secret', resourceId: path, vaultId, details: { version: version.version } }),
    ];
    if (version.maxAccessCount > 0) {
      // The read that takes the last of the budget says so in its own transaction, for watchers.
      const spend = ({ accessCount }: { accessCount: number }) =>
        accessCount < version.maxAccessCount
          ? events
          : [...events, auditEvent(context, at, { action: 'secret.budget_spent', resourceType: 'secret', resourceId: path, vaultId, details: { version: version.version } })];
      if (!(await storage.secrets.consumeRead(vaultId, path, version.version, spend))) {
        // Another reader took the last read, or the version was disabled or deleted meanwhile.
        throw exhausted();
      }
      return { ...view(version), accessCount: version.accessCount + 1, value };
    }
    await storage.appendAudit(events);
    return { ...view(version), value };
  }

  function open(version: SecretVersionRecord): string {
    if (!version.ciphertext) throw dataLoss(`version ${version.version} of secret ${quote(version.path)} has no stored value`);
    try {
      return Buffer.from(barrier.open(version.ciphertext, secretContext(version.vaultId, version.path, version.version))).toString('utf8');
    } catch (error) {
      if (error instanceof BarrierError) {
        throw dataLoss(`version ${version.version} of secret ${quote(version.path)} cannot be decrypted: ${error.message}`);
      }
      throw error;
    }
  }

  return {
    async put(context, input) {
      await admit(context, input.vaultId, input.path, 'write');
      if (!input.value) throw invalidArgument('value is required and must not be empty');
      if (Buffer.byteLength(input.value) > maxValueBytes) throw invalidArgument(`value must be at most ${maxValueBytes} bytes`);
      const type = requireSecretType(input.type, 'generic');
      const metadata = requireMetadata(input.metadata);
      const expiresAt = requireFuture('expires_at', input.expiresAt, now());
      if (!Number.isInteger(input.maxAccessCount) || input.maxAccessCount < 0) {
        throw invalidArgument(`max_access_count must be 0 (unlimited) or more, got ${input.maxAccessCount}`);
      }
      const stage = requireWriteStage(input.stage);
      const at = now();
      const schedule = input.rotationPolicy === undefined ? undefined : requireSchedule(input.rotationPolicy, at);
      const ifVersion = requireIfVersion(input.ifVersion);
      return write(context, { vaultId: input.vaultId, path: input.path, action: 'secret.write', ifVersion, usesPrevious: false, stage }, () => ({
        value: input.value,
        type,
        metadata,
        expiresAt,
        maxAccessCount: input.maxAccessCount,
        ...(schedule === undefined ? {} : { schedule }),
      }));
    },

    async schedule(context, vaultId, path) {
      await admit(context, vaultId, path, 'read');
      const found = await storage.secrets.schedule(vaultId, path);
      if (!found) {
        await vaults.require(context, vaultId);
        throw notFound(`secret ${quote(path)} does not exist in vault ${vaultId}`);
      }
      return found;
    },

    async rotateScheduled(vaultId, path, dueAt) {
      const context: CallContext = { principal: SYSTEM, requestId: `rotation-${randomUUID()}` };
      const at = now();
      const found = await storage.secrets.schedule(vaultId, path);
      const policy = found?.policy;
      if (!policy || found.nextRotationAt?.getTime() !== dueAt.getTime()) return false;
      // Once on return from an outage, not once per missed interval: the next due time is one
      // interval after the missed one, or after now if that has passed too.
      const step = policy.intervalSeconds * 1000;
      const nextAt = new Date(dueAt.getTime() + step > at.getTime() ? dueAt.getTime() + step : at.getTime() + step);
      const value = randomString(policy.length, CHARSETS[policy.charset as keyof typeof CHARSETS]);
      const created = await storage.secrets.rotateDue(
        { vaultId, path, dueAt, nextAt, at, stage: policy.stage },
        ({ version, previous }) => {
          if (!previous) throw notFound(`secret ${quote(path)} has no live version to rotate`);
          return {
            id: randomUUID(),
            type: previous.type,
            metadata: previous.metadata,
            ciphertext: barrier.seal(Buffer.from(value, 'utf8'), secretContext(vaultId, path, version)),
            createdBy: SYSTEM.id,
            createdAt: at,
            // Like a manual rotation: the new version keeps the previous one's budget and lifetime.
            expiresAt: inheritedExpiresAt(previous, at),
            maxAccessCount: previous.maxAccessCount,
          };
        },
        (version) => [
          auditEvent(context, at, {
            action: 'secret.rotate',
            resourceType: 'secret',
            resourceId: path,
            vaultId,
            details: { version: version.version, scheduled: true, ...(version.stage === 'pending' ? { stage: 'pending' } : {}) },
          }),
        ],
      );
      return created !== null;
    },

    async rotate(context, input) {
      await admit(context, input.vaultId, input.path, 'rotate');
      const { length, charset } = requireGenerated(input.length, input.charset);
      const typeOverride = input.type ? requireSecretType(input.type, 'generic') : undefined;
      const metadataOverride = input.metadata === undefined ? undefined : requireMetadata(input.metadata);
      const stage = requireWriteStage(input.stage);
      const value = randomString(length, CHARSETS[charset as keyof typeof CHARSETS]);
      const expiresAtOverride = requireFuture('expires_at', input.expiresAt, now());
      if (input.maxAccessCount !== undefined && (!Number.isInteger(input.maxAccessCount) || input.maxAccessCount < 0)) {
        throw invalidArgument(`max_access_count must be 0 (unlimited) or more, got ${input.maxAccessCount}`);
      }
      const ifVersion = requireIfVersion(input.ifVersion);
      const created = await write(context, { vaultId: input.vaultId, path: input.path, action: 'secret.rotate', ifVersion, usesPrevious: true, stage }, (previous, at) => {
        if (!previous) throw notFound(`secret ${quote(input.path)} does not exist in vault ${input.vaultId}: put a value before rotating it`);
        const inheritedExpiry = inheritedExpiresAt(previous, at);
        return {
          value,
          type: typeOverride ?? previous.type,
          metadata: metadataOverride === undefined ? previous.metadata : metadataOverride,
          expiresAt: expiresAtOverride ?? inheritedExpiry ?? null,
          maxAccessCount: input.maxAccessCount ?? previous.maxAccessCount,
        };
      });
      if (await access.mayAccess(context, input.vaultId, 'read', input.path)) return created;
      // Shown no more than a write would show: only what this request set.
      return {
        ...created,
        type: typeOverride ?? '',
        metadata: metadataOverride === undefined ? null : metadataOverride,
        expiresAt: expiresAtOverride ?? null,
      };
    },

    async get(context, vaultId, path, stage = '') {
      const wanted = requireReadStage(stage);
      return read(context, vaultId, path, wanted ? { kind: 'stage', stage: wanted } : { kind: 'latest' });
    },

    async promote(context, vaultId, path, version, ifVersion) {
      await admit(context, vaultId, path, 'rotate');
      requireVersion(version);
      const expected = requireIfVersion(ifVersion);
      const at = now();
      const outcome = await guarded({ vaultId, path }, () => storage.secrets.promote(vaultId, path, version, ({ replaced }) => [
        auditEvent(context, at, {
          action: 'secret.promote',
          resourceType: 'secret',
          resourceId: path,
          vaultId,
          details: replaced === null ? { version } : { version, replaced },
        }),
      ], expected));
      if (outcome.kind === 'promoted' || outcome.kind === 'unchanged') {
        // As with rotation: a caller who may not read the path learns nothing of the version's settings.
        const promoted = view(outcome.version);
        return (await access.mayAccess(context, vaultId, 'read', path)) ? promoted : { ...promoted, type: '', metadata: null, expiresAt: null };
      }
      const which = { path, vault_id: vaultId, version: String(version) };
      if (outcome.kind === 'disabled') {
        throw failedPrecondition('SECRET_VERSION_NOT_PROMOTABLE', `version ${version} of secret ${quote(path)} is disabled: enable it before promoting it`, which);
      }
      const { exists, deleted } = await storage.secrets.lookup(vaultId, path, { kind: 'latest' });
      if (deleted) throw gone('SECRET_DELETED', `secret ${quote(path)} has been deleted`, { path, vault_id: vaultId });
      if (!exists) {
        await vaults.require(context, vaultId);
        throw notFound(`secret ${quote(path)} does not exist in vault ${vaultId}`);
      }
      throw notFound(`secret ${quote(path)} has no version ${version}`);
    },

    async getVersion(context, vaultId, path, version) {
      return read(context, vaultId, path, { kind: 'number', version: requireVersion(version) });
    },

    async list(context, vaultId, prefix, page = FIRST_PAGE) {
      requireUuid('vault_id', vaultId);
      // Access first: an agent without a policy here gets the same 403 whether or not the vault
      // exists (a vault's policies go with it, so a missing vault is one without policies).
      const readable = await access.readablePaths(context, vaultId);
      await vaults.require(context, vaultId);
      // Filtered while paging, so a page holds only readable paths and its token continues after
      // the last row scanned, whether or not that row was readable.
      const listed = await listPage(pages, { list: 'secrets', context, params: [vaultId, prefix] }, page, {
        fetch: (after, limit) => storage.secrets.listLatest(vaultId, prefix, { after, limit }),
        keyOf: (v) => v.path,
        keep: (v) => readable(v.path),
        isKey: isString,
      });
      return { items: listed.items.map(view), nextPageToken: listed.nextPageToken };
    },

    async listVersions(context, vaultId, path, page = FIRST_PAGE) {
      await admit(context, vaultId, path, 'read');
      const listed = await listPage(pages, { list: 'secret-versions', context, params: [vaultId, path] }, page, {
        fetch: (after, limit) => storage.secrets.listVersions(vaultId, path, { after, limit }),
        keyOf: (v) => v.version,
        isKey: isNumber,
      });
      const versions = listed.items;
      if (versions.length === 0 && page.pageToken === '') {
        const { exists, deleted } = await storage.secrets.lookup(vaultId, path, { kind: 'latest' });
        if (deleted) throw gone('SECRET_DELETED', `secret ${quote(path)} has been deleted`, { path, vault_id: vaultId });
        if (!exists) {
          await vaults.require(context, vaultId);
          throw notFound(`secret ${quote(path)} does not exist in vault ${vaultId}`);
        }
      }
      return { items: versions.map(view), nextPageToken: listed.nextPageToken };
    },

    async setDisabled(context, vaultId, path, version, disabled, ifVersion) {
      await admit(context, vaultId, path, 'write');
      requireVersion(version);
      const expected = requireIfVersion(ifVersion);
      const at = now();
      const event = auditEvent(context, at, {
        action: disabled ? 'secret.disable' : 'secret.enable',
        resourceType: 'secret',
        resourceId: path,
        vaultId,
        details: { version },
      });
      if (!(await guarded({ vaultId, path }, () => storage.secrets.setDisabled(vaultId, path, version, disabled, [event], expected)))) {
        const { exists, version: found } = await storage.secrets.lookup(vaultId, path, { kind: 'number', version });
        if (found?.deleted) throw gone('SECRET_DELETED', `secret ${quote(path)} has been deleted`, { path, vault_id: vaultId });
        if (!exists) await vaults.require(context, vaultId);
        throw notFound(exists ? `secret ${quote(path)} has no version ${version}` : `secret ${quote(path)} does not exist in vault ${vaultId}`);
      }
    },

    async delete(context, vaultId, path, ifVersion) {
      await admit(context, vaultId, path, 'delete');
      const expected = requireIfVersion(ifVersion);
      const event = auditEvent(context, now(), { action: 'secret.delete', resourceType: 'secret', resourceId: path, vaultId });
      if (!(await guarded({ vaultId, path }, () => storage.secrets.delete(vaultId, path, [event], expected)))) {
        const { exists, deleted } = await storage.secrets.lookup(vaultId, path, { kind: 'latest' });
        if (deleted) throw gone('SECRET_DELETED', `secret ${quote(path)} has already been deleted`, { path, vault_id: vaultId });
        if (!exists) await vaults.require(context, vaultId);
        throw notFound(`secret ${quote(path)} does not exist in vault ${vaultId}`);
      }
    },
  };
}

function view(record: SecretVersionRecord): SecretVersionView {
  const { ciphertext: _ciphertext, ...rest } = record;
  return rest;
}

/** The previous version's lifetime, counted from this rotation: a 1-hour secret stays 1-hour. */
function inheritedExpiresAt(previous: SecretVersionRecord, at: Date): Date | null {
  return previous.expiresAt && new Date(at.getTime() + (previous.expiresAt.getTime() - previous.createdAt.getTime()));
}
