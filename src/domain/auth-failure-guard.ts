/** Where an authentication attempt came from: the client's address and the agent it named, if any. */
export interface AuthAttemptSource {
  readonly address: string | undefined;
  readonly agentId: string | undefined;
}

/**
 * Bounds failed authentications per client address and per agent id, and records them in the
 * audit trail aggregated per address and window, so a flood costs rows per window, not per
 * request. Implemented in src/auth (failed-auth-limiter.ts).
 */
export interface AuthFailureGuard {
  /** Refuses with RESOURCE_EXHAUSTED (reason TOO_MANY_FAILED_AUTHENTICATIONS) while limited. */
  admit(source: AuthAttemptSource, requestId: string): Promise<void>;
  /** Counts one failed authentication and audits it. */
  fail(source: AuthAttemptSource, requestId: string): Promise<void>;
}
