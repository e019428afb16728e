// Where the SDK's Bearer token comes from: a fixed token (root or agent), or an agent's `ocv_`
// API key exchanged for short-lived tokens that are refreshed before they expire. Neither the key
// nor a token is ever logged or put in an error message.

/** How the client authenticates. */
export type Credentials =
  /** A root token or an agent token, sent as is. */
  | { token: string }
  /** An agent's API key: exchanged for a token (AuthService.CreateAgentToken), refreshed as needed. */
  | { apiKey: string; agentId?: string };

export interface IssuedToken {
  accessToken: string;
  /** Seconds the token is valid for, from the exchange. */
  expiresIn: number;
}

export interface TokenSource {
  /** The token to send, or undefined for an unauthenticated call. */
  token(): Promise<string | undefined>;
  /** Called after the server refused `token` (UNAUTHENTICATED); true if a retry may help. */
  refused(token: string): boolean;
}

/** A token is renewed once this share of its lifetime has passed. */
const RENEW_AT_FRACTION = 0.8;

export function createTokenSource(
  credentials: Credentials | undefined,
  exchange: (apiKey: string, agentId: string) => Promise<IssuedToken>,
  now: () => number,
): TokenSource {
  if (!credentials) return { token: async () => undefined, refused: () => false };
  if ('token' in credentials) return { token: async () => credentials.token, refused: () => false };

  let current: { token: string; renewAt: number } | undefined;
  let pending: Promise<string> | undefined;
  const renew = () =>
    (pending ??= exchange(credentials.apiKey, credentials.agentId ?? '')
      .then((issued) => {
        current = { token: issued.accessToken, renewAt: now() + issued.expiresIn * 1000 * RENEW_AT_FRACTION };
        return issued.accessToken;
      })
      .finally(() => (pending = undefined)));

  return {
    async token() {
      if (current && now() < current.renewAt) return current.token;
      return renew();
    },
    refused(token) {
      // Only a token we issued can be renewed; a refused fresh exchange means the key is bad.
      if (current?.token !== token) return false;
      current = undefined;
      return true;
    },
  };
}
