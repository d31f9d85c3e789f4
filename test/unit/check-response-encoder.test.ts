import { fromBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { HeaderValueOption_HeaderAppendAction } from "../../gen/envoy/config/core/v3/base_pb.js";
import { CheckResponseSchema } from "../../gen/envoy/service/auth/v3/external_auth_pb.js";
import { encodeDenied, encodeOk } from "../../src/transport/envoy/check-response-encoder.js";

/** The hand-written CheckResponse bytes decode, with the generated schema, to what was meant. */
const OVERWRITE = HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD;
const plain = (opts: { header?: { key: string; value: string }; appendAction: number }[]) =>
  opts.map((o) => [o.header?.key, o.header?.value, o.appendAction]);

describe("check-response-encoder", () => {
  it("an allow: status OK, identity headers (OVERWRITE_IF_EXISTS_OR_ADD), headers to remove, client headers", () => {
    const headers: [string, string][] = [
      ["x-zpk-customer-id", "6f1c2d3e-0000-4000-8000-000000000001"],
      ["x-zpk-scopes", "(unrestricted)"],
      ["x-zpk-note", "ünïcødé ✓"],
    ];
    const res = fromBinary(CheckResponseSchema, encodeOk({ code: 0, headers, remove: ["authorization", "x-zpk-instance-id"], client: [["x-ratelimit-limit", "60"]] }));
    expect(res.status?.code).toBe(0);
    expect(res.httpResponse.case).toBe("okResponse");
    const ok = res.httpResponse.case === "okResponse" ? res.httpResponse.value : null;
    expect(plain(ok!.headers)).toEqual(headers.map(([k, v]) => [k, v, OVERWRITE]));
    expect(ok!.headersToRemove).toEqual(["authorization", "x-zpk-instance-id"]);
    expect(plain(ok!.responseHeadersToAdd)).toEqual([["x-ratelimit-limit", "60", OVERWRITE]]);
  });

  it("a denial: status code and message, HTTP status, headers and body, also when sub-messages exceed 127 and 16383 bytes", () => {
    for (const size of [10, 200, 20_000, 70_000]) {
      const body = JSON.stringify({ error: { code: "rate_limited", message: "x".repeat(size) } });
      const res = fromBinary(
        CheckResponseSchema,
        encodeDenied({ code: 8, message: "m".repeat(size), httpStatus: 429, headers: [["retry-after", "3"], ["content-type", "application/json"]], body }),
      );
      expect(res.status?.code).toBe(8);
      expect(res.status?.message).toBe("m".repeat(size));
      const d = res.httpResponse.case === "deniedResponse" ? res.httpResponse.value : null;
      expect(d?.status?.code).toBe(429);
      expect(plain(d!.headers)).toEqual([["retry-after", "3", OVERWRITE], ["content-type", "application/json", OVERWRITE]]);
      expect(d!.body).toBe(body);
    }
  });
});
