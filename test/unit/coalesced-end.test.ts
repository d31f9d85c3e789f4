import { describe, expect, it } from "vitest";
import { coalescedEnd } from "../../src/transport/http/coalesced-end.js";

/** A response that records when and with what it was ended. */
const recorder = (log: string[], name: string) => ({ end: (body?: string | Uint8Array) => void log.push(`${name}:${String(body)}`) });
const nextTurn = () => new Promise<void>((r) => setImmediate(r));

describe("coalescedEnd", () => {
  it("ends the turn's responses after the turn, together and in the order they were finished", async () => {
    const log: string[] = [];
    coalescedEnd(recorder(log, "a"), "1");
    await Promise.resolve(); // a microtask of the same turn (an awaited store call)
    coalescedEnd(recorder(log, "b"));
    coalescedEnd(recorder(log, "c"), "3");
    expect(log, "nothing written before the turn ends").toEqual([]);
    await nextTurn();
    expect(log).toEqual(["a:1", "b:undefined", "c:3"]);
  });

  it("a response finished while the turn's answers are written goes out in the next turn", async () => {
    const log: string[] = [];
    coalescedEnd({ end: () => void (log.push("first"), coalescedEnd(recorder(log, "late"), "x")) });
    await nextTurn();
    expect(log).toEqual(["first"]);
    await nextTurn();
    expect(log).toEqual(["first", "late:x"]);
  });

  it("an end() that throws does not keep the turn's other answers from being written", async () => {
    const log: string[] = [];
    const warned = new Promise<Error>((r) => process.once("warning", r));
    coalescedEnd({ end: () => { throw new Error("boom"); } });
    coalescedEnd(recorder(log, "after"), "y");
    await nextTurn();
    expect(log).toEqual(["after:y"]);
    expect((await warned).message).toBe("boom");
  });
});
