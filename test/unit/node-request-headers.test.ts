import { describe, expect, it } from "vitest";
import { NodeRequestHeaders } from "../../src/transport/http/node-request-headers.js";

/** What node hands a handler as `req.headers` over HTTP/2: lowercased names, pseudo-headers, set-cookie as an array. */
const fromNode = () => ({
  ":method": "GET",
  ":path": "/v1/api-keys",
  authorization: "Bearer zpk_live_x",
  "x-request-id": "abc",
  "set-cookie": ["a=1", "b=2"],
});

describe("a node request's headers as the context's Headers (REST)", () => {
  it("reads any spelling of a name, and null for one not sent", () => {
    const h = new NodeRequestHeaders(fromNode());
    expect(h.get("Authorization")).toBe("Bearer zpk_live_x");
    expect(h.has("X-Request-Id")).toBe(true);
    expect(h.get("x-api-key")).toBeNull();
    expect(h.has("x-api-key")).toBe(false);
  });

  it("does not show HTTP/2's pseudo-headers, as the copy it replaces did not", () => {
    const h = new NodeRequestHeaders(fromNode());
    expect(h.get(":path")).toBeNull();
    expect([...h.keys()]).toEqual(["authorization", "x-request-id", "set-cookie"]);
  });

  it("joins repeated values with a comma, as Headers does", () => {
    const h = new NodeRequestHeaders(fromNode());
    expect(h.get("set-cookie")).toBe("a=1, b=2");
    expect(h.getSetCookie()).toEqual(["a=1", "b=2"]);
    h.append("x-request-id", "def");
    expect(h.get("x-request-id")).toBe("abc, def");
  });
});
