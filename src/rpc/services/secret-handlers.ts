import type { SecretService, SecretVersionView, SecretWithValue } from '../../domain/secret-service.js';
import type { SecretWatch, WatchMessage } from '../../domain/secret-watch.js';
import {
  SecretServiceService,
  type Secret,
  type WatchSecretsResponse,
  type SecretVersion,
  type WrittenSecretVersion,
} from '../../gen/vault/v1/secret_service.js';
import { defineService } from '../api-method.js';

/** vault.v1.SecretService: proto in, domain call, proto out. No rules live here. */
export function secretServiceMethods(secrets: SecretService, changes: SecretWatch) {
  return defineService(SecretServiceService, {
    async putSecret(context, request) {
      const created = await secrets.put(context, {
        vaultId: request.vaultId,
        path: request.path,
        value: request.value,
        type: request.type,
        metadata: request.metadata,
        expiresAt: request.expiresAt,
        maxAccessCount: request.maxAccessCount,
        stage: request.stage,
        rotationPolicy: request.rotationPolicy,
        ifVersion: request.ifVersion,
      });
      return { secret: toWritten(created) };
    },
    async getSecret(context, request) {
      return { secret: toSecret(await secrets.get(context, request.vaultId, request.path, request.stage)) };
    },
    async listSecrets(context, request) {
      const page = await secrets.list(context, request.vaultId, request.prefix, { pageSize: request.pageSize, pageToken: request.pageToken });
      return { secrets: page.items.map(toVersion), nextPageToken: page.nextPageToken };
    },
    async deleteSecret(context, request) {
      await secrets.delete(context, request.vaultId, request.path, request.ifVersion);
      return {};
    },
    async listSecretVersions(context, request) {
      const page = await secrets.listVersions(context, request.vaultId, request.path, { pageSize: request.pageSize, pageToken: request.pageToken });
      const { policy, nextRotationAt, lastRotatedAt } = await secrets.schedule(context, request.vaultId, request.path);
      return {
        versions: page.items.map(toVersion),
        nextPageToken: page.nextPageToken,
        // Shown as it is set: stage empty for current.
        rotationPolicy: policy ? { ...policy, stage: policy.stage === 'pending' ? 'pending' : '' } : undefined,
        nextRotationAt: nextRotationAt ?? undefined,
        lastRotatedAt: lastRotatedAt ?? undefined,
      };
    },
    async getSecretVersion(context, request) {
      return { secret: toSecret(await secrets.getVersion(context, request.vaultId, request.path, request.version)) };
    },
    async disableSecretVersion(context, request) {
      await secrets.setDisabled(context, request.vaultId, request.path, request.version, true, request.ifVersion);
      return {};
    },
    async enableSecretVersion(context, request) {
      await secrets.setDisabled(context, request.vaultId, request.path, request.version, false, request.ifVersion);
      return {};
    },
    async rotateSecret(context, request) {
      const created = await secrets.rotate(context, {
        vaultId: request.vaultId,
        path: request.path,
        length: request.length,
        charset: request.charset,
        type: request.type,
        metadata: request.metadata,
        stage: request.stage,
        expiresAt: request.expiresAt,
        maxAccessCount: request.maxAccessCount,
        ifVersion: request.ifVersion,
      });
      return { secret: toWritten(created) };
    },
    async promoteSecretVersion(context, request) {
      return { secret: toVersion(await secrets.promote(context, request.vaultId, request.path, request.version, request.ifVersion)) };
    },
    async watchSecrets(context, request, stream) {
      await changes.watch(context, request, {
        send: (message) => stream.write(toWatchResponse(message)),
        signal: stream.signal,
        reauthenticate: stream.reauthenticate,
      });
    },
  });
}

function toWritten(v: SecretVersionView): WrittenSecretVersion {
  return {
    id: v.id,
    path: v.path,
    type: v.type,
    version: v.version,
    metadata: v.metadata ?? undefined,
    createdAt: v.createdAt,
    expiresAt: v.expiresAt ?? undefined,
  };
}

function toVersion(v: SecretVersionView): SecretVersion {
  return { ...toWritten(v), isDisabled: v.disabled, stage: v.stage ?? '', maxAccessCount: v.maxAccessCount, accessCount: v.accessCount };
}

function toSecret(v: SecretWithValue): Secret {
  return { ...toWritten(v), value: v.value, createdBy: v.createdBy };
}

function toWatchResponse(message: WatchMessage): WatchSecretsResponse {
  if (message.kind === 'heartbeat') return { message: { $case: 'heartbeat', value: { cursor: message.cursor, time: message.time } } };
  return { message: { $case: 'event', value: message.event } };
}
