import { createServer, type Server } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { freePort, withFreshPorts } from "../helpers/loopback.js";

/** The tests' and the bench's process starts pick ports with freePort; a port taken before the bind is retried. */

const servers: Server[] = [];
afterAll(() => Promise.all(servers.map((s) => new Promise((r) => s.close(r)))));

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(port, "127.0.0.1", () => {
      servers.push(s);
      resolve(s);
    });
  });
}

describe("withFreshPorts", () => {
  it("starts again on a new port when the one picked was taken before the bind", async () => {
    const taken = await listen(0);
    const takenPort = (taken.address() as { port: number }).port;
    const tried: number[] = [];
    const server = await withFreshPorts(async () => {
      const port = tried.length === 0 ? takenPort : await freePort();
      tried.push(port);
      return listen(port);
    });
    expect(tried).toHaveLength(2);
    expect((server.address() as { port: number }).port).toBe(tried[1]);
  });

  it("gives up after three attempts, and retries no other error", async () => {
    let attempts = 0;
    await expect(withFreshPorts(async () => {
      attempts++;
      throw new Error("caddy did not start: listen tcp 127.0.0.1:1: bind: address already in use");
    })).rejects.toThrow(/address already in use/);
    expect(attempts).toBe(3);
    attempts = 0;
    await expect(withFreshPorts(async () => {
      attempts++;
      throw new Error("config invalid");
    })).rejects.toThrow("config invalid");
    expect(attempts).toBe(1);
  });
});
