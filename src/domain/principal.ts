/** Who is calling. Root is the operator holding VAULT_ROOT_TOKEN; agents come from API keys/tokens. */
export type Principal =
  | { readonly type: 'root'; readonly id: 'root' }
  /**
   * `generation`: the agent's credential generation it was authenticated under. Every policy
   * change bumps it, so what was read of the agent's policies holds while the generation does.
   */
  | { readonly type: 'agent'; readonly id: string; readonly generation?: number }
  /** A caller of a method that needs no credentials (health, token exchange). */
  | { readonly type: 'anonymous'; readonly id: '' }
  /** The vault itself, e.g. a scheduled rotation; never a caller of the API. */
  | { readonly type: 'system'; readonly id: 'system' };

export const ROOT: Principal = { type: 'root', id: 'root' };
export const ANONYMOUS: Principal = { type: 'anonymous', id: '' };
export const SYSTEM: Principal = { type: 'system', id: 'system' };

/** One call as the domain sees it: the caller and the request id that ties logs and audit together. */
export interface CallContext {
  readonly principal: Principal;
  readonly requestId: string;
  /** The client's IP address as the transport resolved it (X-Forwarded-For only from trusted proxies). */
  readonly clientAddress?: string | undefined;
}
