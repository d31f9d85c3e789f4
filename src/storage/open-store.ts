import type { Config } from "../config/config.js";
import { SqliteStore } from "./sqlite/sqlite-store.js";
import type { Store } from "./store.js";

/** The store the configuration asks for: MongoDB when MONGODB_URI is set, else embedded SQLite. */
export async function openStore(config: Pick<Config, "DATA_DIR" | "MONGODB_URI" | "MONGODB_DB">): Promise<Store> {
  if (config.MONGODB_URI) {
    throw new Error("MONGODB_URI is not supported yet: unset it to use the embedded store");
  }
  return new SqliteStore(config.DATA_DIR);
}
