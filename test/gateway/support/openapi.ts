import { readFileSync } from 'node:fs';

/**
 * The hosted API's OpenAPI schemas (a verbatim copy of shared/reference/hosted-api-openapi-subset.json)
 * and a validator for the part of JSON Schema they use: type, nullable, required, properties,
 * additionalProperties, items, enum, minimum, maximum, format (uuid, date-time, uri, int64) and
 * local $ref. Any other keyword is an error, so a schema this cannot check never passes silently.
 */
type Schema = Record<string, any>;

const spec = JSON.parse(readFileSync(new URL('../fixtures/hosted-api-openapi-subset.json', import.meta.url), 'utf8')) as Schema;

const KNOWN = new Set(['type', 'nullable', 'required', 'properties', 'additionalProperties', 'items', 'enum', 'minimum', 'maximum', 'format', '$ref', 'description', 'example', 'default']);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// RFC 3339 date-time, as JSON Schema's "date-time" format means it.
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

export interface ValidateOptions {
  /** Also report properties the schema does not list (the contract's field names, exactly). */
  strict?: boolean;
}

/** Problems with `value` against `schema` (empty when it validates), each with a JSON path. */
export function validate(schema: Schema, value: unknown, { strict = false }: ValidateOptions = {}, at = '$'): string[] {
  if (schema.$ref) return validate(resolve(schema.$ref as string), value, { strict }, at);
  const unknown = Object.keys(schema).filter((k) => !KNOWN.has(k));
  if (unknown.length > 0) return [`${at}: schema uses unsupported keywords ${unknown.join(', ')}`];
  if (value === null) return schema.nullable ? [] : [`${at}: is null`];

  const problems: string[] = [];
  const type = schema.type as string | undefined;
  const actual = Array.isArray(value) ? 'array' : Number.isInteger(value) ? 'integer' : typeof value;
  const typeOk = type === undefined || type === actual || (type === 'number' && actual === 'integer');
  if (!typeOk) return [`${at}: expected ${type}, got ${actual} ${JSON.stringify(value)}`];

  if (schema.enum && !(schema.enum as unknown[]).includes(value)) problems.push(`${at}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`);
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) problems.push(`${at}: ${value} < minimum ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) problems.push(`${at}: ${value} > maximum ${schema.maximum}`);
  }
  if (typeof value === 'string') {
    if (schema.format === 'uuid' && !UUID.test(value)) problems.push(`${at}: ${JSON.stringify(value)} is not a uuid`);
    if (schema.format === 'date-time' && (!DATE_TIME.test(value) || Number.isNaN(Date.parse(value)))) problems.push(`${at}: ${JSON.stringify(value)} is not an RFC 3339 date-time`);
    if (schema.format === 'uri' && !URL.canParse(value)) problems.push(`${at}: ${JSON.stringify(value)} is not a URI`);
  }
  if (Array.isArray(value) && schema.items) {
    value.forEach((item, i) => problems.push(...validate(schema.items as Schema, item, { strict }, `${at}[${i}]`)));
  }
  if (actual === 'object') {
    const object = value as Record<string, unknown>;
    for (const name of (schema.required as string[] | undefined) ?? []) {
      if (!(name in object)) problems.push(`${at}: missing required property ${name}`);
    }
    const properties = (schema.properties ?? {}) as Record<string, Schema>;
    for (const [name, item] of Object.entries(object)) {
      if (properties[name]) problems.push(...validate(properties[name], item, { strict }, `${at}.${name}`));
      else if (schema.additionalProperties && typeof schema.additionalProperties === 'object') {
        problems.push(...validate(schema.additionalProperties as Schema, item, { strict }, `${at}.${name}`));
      } else if (schema.additionalProperties === false || (strict && schema.properties && schema.additionalProperties === undefined)) {
        problems.push(`${at}: unexpected property ${name}`);
      }
    }
  }
  return problems;
}

function resolve(ref: string): Schema {
  if (!ref.startsWith('#/')) throw new Error(`only local $refs are supported, got ${ref}`);
  return ref
    .slice(2)
    .split('/')
    .reduce<Schema>((node, key) => {
      const next = node[key] as Schema | undefined;
      if (!next) throw new Error(`unresolved $ref ${ref}`);
      return next;
    }, spec);
}

/** An operation of the hosted API by operationId. */
function operation(operationId: string): Schema {
  for (const methods of Object.values(spec.paths as Schema)) {
    for (const op of Object.values(methods as Schema)) if ((op as Schema).operationId === operationId) return op as Schema;
  }
  throw new Error(`the hosted API has no operation ${operationId}`);
}

/**
 * Checks an HTTP response against the hosted API's description of one operation: a success
 * status must be one the operation documents, with a body that validates (or no body where none
 * is documented); an error body must validate as ProblemDetails.
 */
export function validateResponse(operationId: string, status: number, body: unknown, options: ValidateOptions = {}): string[] {
  const op = operation(operationId);
  if (status >= 400) return validate({ $ref: '#/components/schemas/ProblemDetails' }, body, {}, `${operationId} ${status}`);
  const documented = (op.responses as Schema)[String(status)] as Schema | undefined;
  if (!documented) return [`${operationId}: status ${status} is not one the hosted API documents (${Object.keys(op.responses as Schema).join(', ')})`];
  const schema = documented.content?.['application/json']?.schema as Schema | undefined;
  if (!schema) return body === undefined ? [] : [`${operationId} ${status}: the hosted API documents no body, got ${JSON.stringify(body).slice(0, 80)}`];
  return validate(schema, body, options, `${operationId} ${status}`).filter((problem) => !isContractAddition(problem));
}

/**
 * Fields our contract (api-contract.md and the audit/agent issue) adds to a hosted schema on
 * purpose; strict checks allow exactly these and nothing else.
 */
const CONTRACT_ADDITIONS: Record<string, readonly string[]> = {
  agentToken: ['agent_id'],
  // The issue asks rotate-key to return {agent, api_key}; agents and policies carry an AIP-154
  // etag for guarded updates (issue 11).
  rotateAgentKey: ['agent', 'etag'],
  createAgent: ['etag'],
  getAgent: ['etag'],
  updateAgent: ['etag'],
  createPolicy: ['etag'],
  updatePolicy: ['etag'],
  // GET /v1/agents/me returns the same Agent as GET /v1/agents/{id}.
  getAgentSelf: ['auth_method', 'token_ttl_seconds', 'etag'],
  // Audit events carry what the audit issue asks for beyond the hosted schema, and their chain link.
  queryAuditEvents: ['vault_id', 'outcome', 'request_id', 'sequence', 'hash', 'next_page_token'],
  // Issue 12: version items show their rotation stage and read budget; AIP-158 pages (issue 11):
  // every list says where its next page starts.
  listSecretVersions: ['stage', 'max_access_count', 'access_count', 'next_page_token'],
  listSecrets: ['stage', 'max_access_count', 'access_count', 'next_page_token'],
  listVaults: ['next_page_token'],
  listAgents: ['next_page_token', 'etag'],
  listPolicies: ['next_page_token', 'etag'],
};

function isContractAddition(problem: string): boolean {
  const match = /^(\w+) \d+[^:]*: unexpected property (\w+)$/.exec(problem);
  return !!match && (CONTRACT_ADDITIONS[match[1]!] ?? []).includes(match[2]!);
}

/** The hosted API's operationId for each RPC it mirrors (EnableSecretVersion has none). */
export const OPERATION_IDS: Readonly<Record<string, string>> = {
  'vault.v1.VaultService.CreateVault': 'createVault',
  'vault.v1.VaultService.ListVaults': 'listVaults',
  'vault.v1.VaultService.GetVault': 'getVault',
  'vault.v1.VaultService.DeleteVault': 'deleteVault',
  'vault.v1.SecretService.PutSecret': 'putSecret',
  'vault.v1.SecretService.GetSecret': 'getSecret',
  'vault.v1.SecretService.ListSecrets': 'listSecrets',
  'vault.v1.SecretService.DeleteSecret': 'deleteSecret',
  'vault.v1.SecretService.ListSecretVersions': 'listSecretVersions',
  'vault.v1.SecretService.GetSecretVersion': 'getSecretVersion',
  'vault.v1.SecretService.DisableSecretVersion': 'disableSecretVersion',
  'vault.v1.SecretService.RotateSecret': 'rotateSecret',
  'vault.v1.SystemService.GetHealth': 'healthCheck',
  'vault.v1.AgentService.CreateAgent': 'createAgent',
  'vault.v1.AgentService.ListAgents': 'listAgents',
  'vault.v1.AgentService.GetAgentSelf': 'getAgentSelf',
  'vault.v1.AgentService.GetAgent': 'getAgent',
  'vault.v1.AgentService.UpdateAgent': 'updateAgent',
  'vault.v1.AgentService.DeleteAgent': 'deleteAgent',
  'vault.v1.AgentService.RotateAgentKey': 'rotateAgentKey',
  'vault.v1.AuthService.CreateAgentToken': 'agentToken',
  'vault.v1.PolicyService.CreatePolicy': 'createPolicy',
  'vault.v1.PolicyService.ListPolicies': 'listPolicies',
  'vault.v1.PolicyService.UpdatePolicy': 'updatePolicy',
  'vault.v1.PolicyService.DeletePolicy': 'deletePolicy',
  'vault.v1.AuditService.ListAuditEvents': 'queryAuditEvents',
  'vault.v1.AuditService.VerifyAuditChain': 'verifyAuditChain',
};
