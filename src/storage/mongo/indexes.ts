import type { Db, IndexDescription } from "mongodb";
import { DASHBOARD_INDEXES } from "./mongo-dashboard.js";

/**
 * Indexes, created at start-up. Every hot-path query carries `customer_id` (the shard key) or is
 * a unique point lookup (digest, `_id`).
 */
const INDEXES: Record<string, IndexDescription[]> = {
  api_keys: [
    { key: { digest: 1 }, name: "digest_unique", unique: true },
    { key: { customer_id: 1, _id: -1 }, name: "customer_newest" },
    { key: { updated_at: 1 }, name: "updated_at" },
    { key: { customer_id: 1, metadata_pairs: 1 }, name: "customer_metadata" },
    { key: { customer_id: 1, revoked_at: 1, expires_at: 1 }, name: "customer_active" },
  ],
  idempotency_records: [{ key: { expires_at: 1 }, name: "expires_at" }],
  audit_events: [
    { key: { customer_id: 1, _id: -1 }, name: "customer_newest" },
    { key: { customer_id: 1, time: -1 }, name: "customer_time" },
    { key: { customer_id: 1, action: 1, _id: -1 }, name: "customer_action" },
    { key: { target_id: 1, _id: -1 }, name: "target" },
    { key: { customer_id: 1, instance_id: 1, _id: -1 }, name: "customer_instance" },
    { key: { outcome: 1, time: 1 }, name: "outcome_time" },
  ],
  rate_limits: [{ key: { customer_id: 1, v: -1 }, name: "customer_version" }],
  api_key_usage: [{ key: { key_id: 1 }, name: "key" }],
  ...DASHBOARD_INDEXES,
};

/**
 * Idempotent: only missing indexes are created, one at a time. (FerretDB 1.24 drops the
 * connection when `createIndexes` names indexes that already exist, so we do not rely on the
 * server treating a repeat as a no-op.)
 */
export async function ensureIndexes(db: Db): Promise<void> {
  for (const [name, wanted] of Object.entries(INDEXES)) {
    const collection = db.collection(name);
    const existing = new Set(
      (await collection.listIndexes().toArray().catch(() => [] as { name: string }[])).map((i) => i.name),
    );
    for (const index of wanted) {
      if (!existing.has(index.name!)) await collection.createIndexes([index]);
    }
  }
}
