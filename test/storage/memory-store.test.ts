import { describeStoreContract } from "./store-contract.js";
import { MemoryStore } from "../helpers/memory-store.js";

/** The shared storage contract against the in-memory store the unit layer runs on. */
describeStoreContract("MemoryStore (test/helpers)", async () => {
  const store = new MemoryStore();
  return { store, cleanup: () => store.close() };
});
