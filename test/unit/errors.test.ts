import { describe, expect, it } from "vitest";
import { ApiError, StorageUnavailableError, invalid, rateLimited, unauthenticated, withoutStack } from "../../src/domain/errors.js";

const frames = /\n\s+at /;

describe("error objects", () => {
  it("a client's error (401, 400, 429) carries no stack trace, so a denied client costs no more than a served one", () => {
    for (const err of [unauthenticated("missing API key"), invalid("bad"), rateLimited({ "retry-after": "1" })]) {
      expect(err.stack ?? "").not.toMatch(frames);
      expect(err.message).not.toBe("");
    }
    expect(withoutStack(() => new Error("answer")).stack).not.toMatch(frames);
  });

  it("a fault of ours (storage unavailable, internal) keeps its stack trace for the log, and other errors are untouched", () => {
    expect(new StorageUnavailableError().stack).toMatch(frames);
    expect(new ApiError("internal", "bug").stack).toMatch(frames);
    expect(new Error("after").stack).toMatch(frames);
    expect(() => withoutStack(() => { throw new Error("inside"); })).toThrow("inside");
    expect(new Error("after a throw").stack).toMatch(frames);
  });
});
