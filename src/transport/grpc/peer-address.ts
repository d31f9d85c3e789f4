/** Parsed peers, by grpc-js's peer string: one per client connection, so few and long-lived (at most 1024 kept). */
const peers = new Map<string, string | null>();

/**
 * The client address in a grpc-js peer string (`call.getPeer()`), for every service on GRPC_PORT
 * (ours and Envoy's Check): "ipv4:127.0.0.1:5000" / "ipv6:[::1]:5000" / "127.0.0.1:5000" -> the
 * address; null for anything else.
 */
export function peerAddress(peer: string): string | null {
  let address = peers.get(peer);
  if (address === undefined) {
    address = /^(?:ipv[46]:)?\[?([^\]]+?)\]?:\d+$/.exec(peer)?.[1] ?? null;
    if (peers.size >= 1024) peers.clear();
    peers.set(peer, address);
  }
  return address;
}
