/** What an agent token asserts. `gen` is the agent's credential generation at issue time. */
export interface AgentTokenClaims {
  sub: string;
  gen: number;
  iat: number;
  exp: number;
}

/**
 * Short-lived agent tokens as the domain needs them: issued by the token exchange, checked when
 * a call presents one. The signing scheme lives in src/auth (agent-token.ts).
 */
export interface AgentTokens {
  issue(claims: AgentTokenClaims): Promise<string>;
  /** The claims of a well-signed, unexpired token, or null. Never throws on hostile input. */
  verify(token: string, nowSeconds: number): Promise<AgentTokenClaims | null>;
}
