import { connect, createServer } from "node:net";

/** Loopback port helpers shared by the tests and the benchmark. */

/** A TCP port nothing listens on right now (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
export function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, "127.0.0.1", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("error", () => resolve(false));
  });
}

/**
 * Starts something on ports picked with `freePort` (`start` picks them), again with new ones, three
 * attempts in all, when the bind failed: between the probe and the bind another process, or an
 * outgoing connection's source port from the same ephemeral range, may take the port. A failed
 * start must throw an error whose message carries the bind error (Node's EADDRINUSE, or the
 * "address already in use" that nginx, Caddy and Go servers print).
 */
export async function withFreshPorts<T>(start: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if (attempt < 3 && /EADDRINUSE|address already in use/i.test(String(err))) continue;
      throw err;
    }
  }
}
