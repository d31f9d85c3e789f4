import * as net from "node:net";
import { describe, expect, it } from "vitest";
import { sleep, startServer } from "../helpers/server.js";

/** SPEC §9: graceful shutdown drains requests and then exits; an idle client must not hold it up. */
describe("shutdown", () => {
  it("SIGTERM with an idle keep-alive client connected still exits promptly (within 2 s) with code 0", async () => {
    const s = await startServer();
    try {
      const port = Number(new URL(s.url).port);
      const socket = net.connect(port, "127.0.0.1");
      socket.on("error", () => {});
      await new Promise<void>((resolve) => {
        socket.write("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n");
        socket.once("data", () => resolve());
      });
      const t0 = Date.now();
      const code = await s.stop();
      const took = Date.now() - t0;
      socket.destroy();
      expect(code).toBe(0);
      expect(took, `shutdown took ${took} ms`).toBeLessThan(2000);
    } finally {
      await s.kill();
    }
  });

  it("a request in flight when SIGTERM arrives still gets its answer, then the server exits 0", async () => {
    const s = await startServer();
    try {
      const port = Number(new URL(s.url).port);
      const socket = net.connect(port, "127.0.0.1");
      socket.on("error", () => {});
      let answer = "";
      socket.on("data", (d: Buffer) => (answer += d.toString()));
      const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
      await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
      const body = JSON.stringify({ name: "in-flight" });
      // headers and half the body now; the rest after SIGTERM
      socket.write(
        `POST /v1/api-keys HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n` +
          `Authorization: Bearer ${s.internalToken}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 5)}`,
      );
      await sleep(300);
      const exit = s.stop();
      await sleep(300);
      socket.end(body.slice(5));
      await Promise.race([closed, sleep(8000)]);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);
      // internal caller without customer_id: a complete, answered request (400), not a dropped one
      expect(status, answer || "no answer").toBe(400);
      expect(answer).toContain("customer_id");
      expect(await exit).toBe(0);
    } finally {
      await s.kill();
    }
  });
});
