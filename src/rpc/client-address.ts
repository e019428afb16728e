import { BlockList, isIP } from 'node:net';

/**
 * The client's IP address for a call: the TCP peer, or, when the peer is a configured trusted
 * proxy, the nearest address in X-Forwarded-For that is not a trusted proxy (walked from the
 * right, as each proxy appends the address it received the request from). A header from any
 * other peer is ignored, so a caller cannot choose its own address.
 */
export type ClientAddressResolver = (peerAddress: string | undefined, forwardedFor: string | undefined) => string | undefined;

export function createClientAddressResolver(trustedProxies: readonly string[]): ClientAddressResolver {
  const trusted = new BlockList();
  for (const entry of trustedProxies) {
    const [address, prefix] = entry.split('/') as [string, string | undefined];
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (prefix === undefined) trusted.addAddress(address, family);
    else trusted.addSubnet(address, Number(prefix), family);
  }
  const isTrusted = (address: string) => trusted.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');

  return (peerAddress, forwardedFor) => {
    let address = normalize(peerAddress);
    if (address === undefined || trustedProxies.length === 0 || !forwardedFor) return address;
    const hops = forwardedFor.split(',').map((hop) => normalize(hop.trim()));
    while (isTrusted(address) && hops.length > 0) {
      const hop = hops.pop();
      if (hop === undefined) break;
      address = hop;
    }
    return address;
  };
}

/** A plain IP: IPv4-mapped IPv6 (`::ffff:1.2.3.4`) as IPv4; anything that is not an IP is undefined. */
function normalize(address: string | undefined): string | undefined {
  if (!address) return undefined;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  const plain = mapped ? mapped[1]! : address;
  return isIP(plain) ? plain : undefined;
}

/** The IP of a grpc-js peer string: `1.2.3.4:5678`, `[::1]:5678`, optionally `ipv4:`/`ipv6:` first. */
export function peerIp(peer: string | undefined): string | undefined {
  if (!peer) return undefined;
  const bare = peer.replace(/^ipv[46]:/, '');
  const bracketed = /^\[([^\]]+)\]/.exec(bare);
  if (bracketed) return bracketed[1];
  const colon = bare.lastIndexOf(':');
  return colon > 0 && bare.indexOf(':') === colon ? bare.slice(0, colon) : bare;
}

/** Why an entry of VAULT_TRUSTED_PROXIES is not an IP address or CIDR block, or undefined. */
export function trustedProxyProblem(entry: string): string | undefined {
  const [address, prefix, extra] = entry.split('/');
  const family = isIP(address ?? '');
  if (!family || extra !== undefined) return `${JSON.stringify(entry)} is not an IP address or CIDR block (e.g. 10.0.0.5 or 10.0.0.0/8)`;
  if (prefix !== undefined && (!/^\d+$/.test(prefix) || Number(prefix) > (family === 6 ? 128 : 32))) {
    return `${JSON.stringify(entry)} has an invalid prefix length (0-${family === 6 ? 128 : 32})`;
  }
  return undefined;
}
