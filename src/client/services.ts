// The vault's services as the SDK sees them: each generated service definition with the codecs
// of its request messages, so every RPC, including ones added later, becomes a typed method.
import * as agentPb from '../gen/vault/v1/agent_service.js';
import * as auditPb from '../gen/vault/v1/audit_service.js';
import * as authPb from '../gen/vault/v1/auth_service.js';
import * as policyPb from '../gen/vault/v1/policy_service.js';
import * as secretPb from '../gen/vault/v1/secret_service.js';
import * as systemPb from '../gen/vault/v1/system_service.js';
import * as vaultPb from '../gen/vault/v1/vault_service.js';

/** One RPC of a ts-proto service definition. */
export interface MethodDefinition<Req, Res> {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  requestSerialize(value: Req): Buffer;
  responseDeserialize(value: Buffer): Res;
}

export type RequestOf<M> = M extends MethodDefinition<infer Req, any> ? Req : never;
export type ResponseOf<M> = M extends MethodDefinition<any, infer Res> ? Res : never;

/** What a caller may pass: any subset of the request's fields (the rest take proto defaults). */
export type PartialRequest<T> = T extends Date | Uint8Array | Buffer | string | number | boolean | undefined
  ? T
  : T extends Array<infer U>
    ? Array<PartialRequest<U>>
    : T extends object
      ? { [K in keyof T]?: PartialRequest<T[K]> }
      : T;

export const SERVICES = {
  secrets: { definition: secretPb.SecretServiceService, messages: secretPb },
  vaults: { definition: vaultPb.VaultServiceService, messages: vaultPb },
  agents: { definition: agentPb.AgentServiceService, messages: agentPb },
  auth: { definition: authPb.AuthServiceService, messages: authPb },
  policies: { definition: policyPb.PolicyServiceService, messages: policyPb },
  audit: { definition: auditPb.AuditServiceService, messages: auditPb },
  system: { definition: systemPb.SystemServiceService, messages: systemPb },
} as const;

export type ServiceName = keyof typeof SERVICES;

interface MessageCodec {
  fromPartial(object: unknown): unknown;
}

/**
 * The codec of a method's request message. buf's STANDARD lint makes every RPC `Foo` take a
 * `FooRequest`, so the name is derived rather than listed by hand.
 */
export function requestCodec(service: ServiceName, methodKey: string): MessageCodec {
  const name = `${methodKey[0]!.toUpperCase()}${methodKey.slice(1)}Request`;
  const codec = (SERVICES[service].messages as Record<string, unknown>)[name] as MessageCodec | undefined;
  if (!codec?.fromPartial) throw new Error(`no request message ${name} for ${service}.${methodKey}`);
  return codec;
}

/** RPCs that change nothing, so retrying them after UNAVAILABLE is always safe. */
export function isReadOnly(path: string): boolean {
  const method = path.slice(path.lastIndexOf('/') + 1);
  return /^(Get|List|Verify|Watch)/.test(method);
}
