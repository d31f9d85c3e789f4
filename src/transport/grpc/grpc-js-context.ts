import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { type ContextKey, type ContextValues, createContextValues } from "@connectrpc/connect";
import type * as grpc from "@grpc/grpc-js";
import { kPeerAddress } from "../../service/call-context.js";
import { LeanHandlerContext } from "../lean-handler-context.js";
import { MetadataHeaders } from "./metadata-headers.js";
import { peerAddress } from "./peer-address.js";

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
    requestHeader: new MetadataHeaders(call.metadata),
    values: new CallValues(call),
    deadline: deadlineOf(call.getDeadline()),
    watchCancel: cancelWatcher(call, isDone),
  });
}

/**
 * Subscribes a context to the call's cancellation. A function that returns the arrow, not an
 * arrow written in the object literal above: tsx compiles with esbuild's keepNames, which names
 * every arrow assigned to a property or a const with `Object.defineProperty` each time it is
 * created (about 0.4 µs here, most of what building this context cost); a returned arrow has no
 * name to keep. grpc-js also reports "cancelled" after a normal end; only a cancel before it matters.
 */
function cancelWatcher(call: grpc.ServerUnaryCall<unknown, unknown>, isDone: () => boolean) {
  return (cancel: () => void) => (call.cancelled ? cancel() : call.on("cancelled", () => isDone() || cancel()));
}

/** grpc-js says Infinity when the caller set no deadline. */
function deadlineOf(d: grpc.Deadline): number | undefined {
  const at = d instanceof Date ? d.getTime() : d;
  return Number.isFinite(at) ? at : undefined;
}

/**
 * The call's context values, with the peer address worked out only when something reads it (an
 * audit event, a portal URL): a gateway's valid Authenticate never does.
 */
class CallValues implements ContextValues {
  private readonly values = createContextValues();
  private peerKnown = false;

  constructor(private readonly call: grpc.ServerUnaryCall<unknown, unknown>) {}

  get<T>(key: ContextKey<T>): T {
    if (key === kPeerAddress && !this.peerKnown) this.set(kPeerAddress, peerAddress(this.call.getPeer()));
    return this.values.get(key);
  }

  set<T>(key: ContextKey<T>, value: T): this {
    if (key === kPeerAddress) this.peerKnown = true;
    this.values.set(key, value);
    return this;
  }

  delete(key: ContextKey<unknown>): this {
    if (key === kPeerAddress) this.peerKnown = true;
    this.values.delete(key);
    return this;
  }
}
