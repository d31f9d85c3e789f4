import type { Config } from "../config/config.js";
import { MongoStore } from "./mongo/mongo-store.js";
import { SqliteStore } from "./sqlite/sqlite-store.js";
import type { Store } from "../domain/store.js";

/** The store the configuration asks for: MongoDB when MONGODB_URI is set, else embedded SQLite. */
export async function openStore(config: Pick<Config, "DATA_DIR" | "MONGODB_URI" | "MONGODB_DB">): Promise<Store> {
  if (config.MONGODB_URI) return MongoStore.connect(config.MONGODB_URI, config.MONGODB_DB);
  return new SqliteStore(config.DATA_DIR);
}
