import { createContextValues } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ApiKeyService } from "../../gen/apikeys/v1/api_key_service_pb.js";
import { LeanHandlerContext } from "../../src/transport/lean-handler-context.js";
import { PlainHeaders } from "../../src/transport/plain-headers.js";

/** The transport's cancellation source, as grpc-js or node:http would report it. */
function transport() {
  const listeners: (() => void)[] = [];
  let watched = 0;
  return {
    watchCancel: (cancel: () => void) => {
      watched++;
      listeners.push(cancel);
    },
    clientGoesAway: () => listeners.forEach((l) => l()),
    watched: () => watched,
  };
}

function contextFor(t: ReturnType<typeof transport>) {
  return new LeanHandlerContext({
    service: ApiKeyService,
    method: ApiKeyService.method.authenticate,
    protocolName: "grpc",
    requestMethod: "POST",
    url: "/apikeys.v1.ApiKeyService/Authenticate",
    requestHeader: new PlainHeaders(),
    values: createContextValues(),
    watchCancel: t.watchCancel,
  });
}

describe("LeanHandlerContext (the context our grpc-js and REST adapters give the service)", () => {
  it("subscribes to the transport's cancellation only when a handler asks for the signal, and only once", () => {
    const t = transport();
    const ctx = contextFor(t);
    expect(t.watched()).toBe(0);
    const signal = ctx.signal;
    expect(ctx.signal).toBe(signal);
    expect(t.watched()).toBe(1);
    expect(signal.aborted).toBe(false);
  });

  it("aborts the signal with Canceled when the client goes away after the handler took it", () => {
    const t = transport();
    const ctx = contextFor(t);
    const signal = ctx.signal;
    t.clientGoesAway();
    expect(signal.aborted).toBe(true);
    expect(String(signal.reason)).toMatch(/canceled/i);
  });

  it("hands out an already-aborted signal when the call was cancelled before anyone asked", () => {
    const t = transport();
    const ctx = contextFor(t);
    ctx.cancel();
    expect(ctx.signal.aborted).toBe(true);
    expect(t.watched()).toBe(0);
  });
});
