/** What `coalescedEnd` finishes: an HTTP/1.1 or HTTP/2 server response. */
interface Endable {
  end(body?: string | Uint8Array): unknown;
}

/**
 * Finishes a response at the end of the event loop's turn (in `setImmediate`), right after every
 * other response finished in that turn, instead of the moment it is ready. Each response is still
 * its own `writev` on its own connection; what changes is when: back to back, once the turn has
 * parsed and answered every request that arrived in it, not between them.
 *
 * Why (issue 17): a write to a connection whose reader sleeps wakes that reader, and the writer
 * pays for the wake-up. With a client on the same machine (a gateway or proxy beside zpk, the
 * bench's load tool), writing each answer as soon as it was built woke the client once a
 * response: on these VMs that `writev` took ~35 µs of a REST list's ~150 µs of CPU, while the same
 * 4.9 KB cost the bare node:http server ~12 µs at its higher rate. Written back to back, the
 * turn's answers wake a reader about once per batch. An answer waits for its turn's other
 * requests at most, never for a timer; HTTP/2 (node's nghttp2 session) already sends what a turn
 * wrote together. Node's `end()` flushes a corked socket at once, so corking the socket instead
 * would not do this.
 *
 * A response ended here is ended: nothing may be written to it afterwards (the callers write
 * whole answers, `writeHead` first).
 */
export function coalescedEnd(res: Endable, body?: string | Uint8Array): void {
  if (queue.length === 0) setImmediate(flush);
  queue.push(res, body);
}

/** Responses and their bodies, in pairs, in the order they were finished. */
let queue: unknown[] = [];

function flush(): void {
  const ending = queue;
  queue = []; // before ending: an answer finished meanwhile waits for the next turn
  for (let i = 0; i < ending.length; i += 2) {
    // node's end() reports a gone client as an event, not a throw; should one throw anyway, the
    // turn's other answers are still written and the process goes on (a warning on stderr).
    try {
      (ending[i] as Endable).end(ending[i + 1] as string | Uint8Array | undefined);
    } catch (err) {
      process.emitWarning(err instanceof Error ? err : String(err));
    }
  }
}
