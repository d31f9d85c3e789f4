import type { Store } from "../domain/store.js";
import type { Metrics } from "./metrics.js";

/**
 * Wraps any Store so every operation's latency and failures are measured, without the stores
 * knowing about metrics.
 */
export function instrumentStore(store: Store, metrics: Metrics): Store {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== "function" || typeof prop !== "string") return value;
      return async (...args: unknown[]) => {
        const end = metrics.storeDuration.startTimer({ op: prop });
        try {
          return await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        } catch (err) {
          metrics.storeErrors.inc({ op: prop });
          throw err;
        } finally {
          end();
        }
      };
    },
  });
}
