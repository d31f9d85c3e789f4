import type { Store } from "../domain/store.js";
import type { Metrics } from "./metrics.js";

type Operation = (...args: unknown[]) => Promise<unknown>;

/**
 * Wraps any Store so every operation's latency and failures are measured, without the stores
 * knowing about metrics. Each operation's wrapper is made once, on its first use, and records
 * through the tally metrics (no label object hashed per call): a REST request makes one or two
 * store calls, and a new closure and prom-client's `startTimer` per call were about 2 % of a
 * list's server CPU.
 */
export function instrumentStore(store: Store, metrics: Metrics): Store {
  const wrapped = new Map<string, Operation>();
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== "function" || typeof prop !== "string") return value;
      let op = wrapped.get(prop);
      if (op === undefined) wrapped.set(prop, (op = timed(target, prop, value as Operation, metrics)));
      return op;
    },
  });
}

function timed(target: Store, op: string, fn: Operation, metrics: Metrics): Operation {
  const labels = () => ({ op });
  return async function (...args: unknown[]) {
    const started = performance.now();
    try {
      return await fn.apply(target, args);
    } catch (err) {
      metrics.storeErrors.inc(op, labels);
      throw err;
    } finally {
      metrics.storeDuration.observe(op, labels, (performance.now() - started) / 1000);
    }
  };
}
