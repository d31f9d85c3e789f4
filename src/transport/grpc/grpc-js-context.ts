import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { createContextValues } from "@connectrpc/connect";
import type * as grpc from "@grpc/grpc-js";
import { kPeerAddress } from "../../service/call-context.js";
import { LeanHandlerContext } from "../lean-handler-context.js";
import { PlainHeaders } from "../plain-headers.js";

/**
 * The HandlerContext of one grpc-js call: its metadata as headers, its peer, its deadline, and a
 * signal that aborts when the client cancels (or the deadline passes) before `isDone()`.
 */
export function grpcJsContext(
  service: DescService,
  method: DescMethod,
  url: string,
  call: grpc.ServerUnaryCall<unknown, unknown>,
  isDone: () => boolean,
) {
  return new LeanHandlerContext({
    service,
    method,
    protocolName: "grpc",
    requestMethod: "POST",
    url,
    requestHeader: headersOf(call.metadata),
    values: createContextValues().set(kPeerAddress, peerAddress(call.getPeer())),
    deadline: deadlineOf(call.getDeadline()),
    // grpc-js also reports "cancelled" after a normal end; only a cancel before it matters.
    watchCancel: (cancel) => (call.cancelled ? cancel() : call.on("cancelled", () => isDone() || cancel())),
  });
}

/** grpc-js says Infinity when the caller set no deadline. */
function deadlineOf(d: grpc.Deadline): number | undefined {
  const at = d instanceof Date ? d.getTime() : d;
  return Number.isFinite(at) ? at : undefined;
}

function headersOf(md: grpc.Metadata): Headers {
  const h = new PlainHeaders();
  const map = md.getMap();
  for (const k in map) {
    const v = map[k];
    if (typeof v === "string") h.append(k, v);
  }
  return h;
}

/** Parsed peers, by grpc-js's peer string: one per client connection, so few and long-lived. */
const peers = new Map<string, string | null>();

/** "ipv4:127.0.0.1:5000" / "ipv6:[::1]:5000" / "127.0.0.1:5000" -> the address. */
function peerAddress(peer: string): string | null {
  let address = peers.get(peer);
  if (address === undefined) {
    address = /^(?:ipv[46]:)?\[?([^\]]+?)\]?:\d+$/.exec(peer)?.[1] ?? null;
    if (peers.size >= 1024) peers.clear();
    peers.set(peer, address);
  }
  return address;
}
