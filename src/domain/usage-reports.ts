import type { Store } from "./store.js";
import { boundInstance, customerFor, requireScope } from "./access.js";
import { invalid, notFound } from "./errors.js";
import { KEY_ID_PATTERN } from "./ids.js";
import { SCOPE } from "./scopes.js";
import type { Caller } from "./types.js";
import { USAGE_RETENTION_MS } from "./usage-recorder.js";

const HOUR_MS = 3_600_000;

export interface UsageHour {
  /** Start of the hour, epoch ms. */
  start: number;
  valid: number;
  /** Denials per reason (only reasons that occurred). */
  denied: Record<string, number>;
}

export interface UsageReport {
  since: number;
  until: number;
  hours: UsageHour[];
}

/**
 * GetUsage (issue "The dashboard"): authentications per hour and outcome of a customer's keys,
 * or of one key, over at most the retention window, under the same visibility rules as ListKeys
 * (scope `api_keys:read`; an instance-bound caller sees its instance's keys only; another's key
 * is not_found).
 */
export class UsageReports {
  constructor(
    private readonly store: Store,
    private readonly now: () => number,
  ) {}

  /** `requestedCustomer` and `keyId` are the request's fields ("" when absent). */
  async report(caller: Caller, requestedCustomer: string, input: { keyId: string; since: number | null; until: number | null }): Promise<UsageReport> {
    const customerId = customerFor(caller, requestedCustomer);
    requireScope(caller, SCOPE.keysRead);
    const keyId = input.keyId === "" ? null : input.keyId;
    const now = this.now();
    const until = input.until ?? now;
    let since = input.since ?? until - USAGE_RETENTION_MS;
    if (since >= until) throw invalid("since must be before until");
    since = Math.max(since - (since % HOUR_MS), now - (now % HOUR_MS) - USAGE_RETENTION_MS);
    const bound = boundInstance(caller);
    if (keyId !== null) {
      if (!KEY_ID_PATTERN.test(keyId)) throw notFound();
      const key = await this.store.findKey(customerId, keyId);
      if (!key || (bound !== null && key.instanceId !== bound)) throw notFound();
    }
    const rows = since < until
      ? await this.store.hourlyUsage({ customerId, keyId, instanceId: bound, since, until })
      : [];
    const hours = new Map<number, UsageHour>();
    for (const r of rows) {
      let h = hours.get(r.hour);
      if (!h) hours.set(r.hour, (h = { start: r.hour, valid: 0, denied: {} }));
      if (r.outcome === "valid") h.valid += r.count;
      else h.denied[r.outcome] = (h.denied[r.outcome] ?? 0) + r.count;
    }
    return { since, until, hours: [...hours.values()].sort((a, b) => a.start - b.start) };
  }
}
