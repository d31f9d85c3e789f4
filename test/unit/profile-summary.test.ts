import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { summarizeProfile, underOurs } from "../../bench/profile-summary.js";

const src = pathToFileURL(join(process.cwd(), "src/transport/rest/rest-handler.ts")).href;
const frame = (id: number, functionName: string, url: string, children: number[] = []) => ({ id, callFrame: { functionName, url, lineNumber: 0, columnNumber: 0 }, children });

/**
 * root → parserOnIncoming (node) → handleRest (src) → writev (native, called by ours)
 *                                → emit (node, not under ours)
 * root → (idle)
 */
const profile = {
  nodes: [
    frame(1, "(root)", "", [2, 6]),
    frame(2, "parserOnIncoming", "node:_http_server", [3, 5]),
    frame(3, "handleRest", src, [4]),
    frame(4, "writev", ""),
    frame(5, "emit", "node:events"),
    frame(6, "(idle)", ""),
  ],
  startTime: 0,
  endTime: 10_000,
  // Each sample lasts the next delta (1 ms each): handleRest 2 ms, writev 3 ms, emit 1 ms, idle 4 ms.
  samples: [3, 3, 4, 4, 4, 5, 6, 6, 6, 6],
  timeDeltas: Array.from({ length: 10 }, () => 1000),
};

describe("bench/profile-summary: time split by whether our code is on the stack", () => {
  it("counts node's work called from a src/ frame under src/, and node's own work outside it", () => {
    const under = underOurs(profile);
    expect([...under].filter(([, v]) => v).map(([id]) => id).sort()).toEqual([3, 4]);
    expect(under.get(2)).toBe(false);
    expect(under.get(5)).toBe(false);
  });

  it("prints each side's ms and µs per request, the socket write counted as ours", () => {
    const file = join(mkdtempSync(join(tmpdir(), "zpk-prof-")), "p.cpuprofile");
    writeFileSync(file, JSON.stringify(profile));
    const out = summarizeProfile(file, { requests: 2 });
    const split = out.slice(out.indexOf("busy time by whether src/ is on the stack")).split("\n");
    const row = (label: string) => split.find((l) => l.trimStart().startsWith(label))?.trim().split(/\s{2,}/);
    // Busy 6 ms: 5 under src/ (2 self, 3 writev), 1 outside (emit). 2 requests: 2500 and 500 µs each.
    expect(row("under a src/ frame")).toEqual(["under a src/ frame (our code, what it calls)", "5", "83.3 %", "2500.0"]);
    expect(row("self in src/")).toEqual(["self in src/", "2", "33.3 %", "1000.0"]);
    expect(row("native (C++ bindings, RegExp)")?.slice(1)).toEqual(["3", "50.0 %", "1500.0"]);
    expect(row("no src/ frame")).toEqual(["no src/ frame (the transport around it)", "1", "16.7 %", "500.0"]);
  });
});
