import { freshDbName, mongoServer, mongoUri } from "../helpers/mongo.js";
import { tempDir } from "../helpers/server.js";
import { describeServiceOnStore } from "./store-behaviours.js";

/**
 * One body of behaviours (store-behaviours.ts) against a server on each store (SPEC §8): the
 * embedded SQLite store in a fresh DATA_DIR, and MongoDB on the suite's FerretDB (or a real
 * MongoDB with TEST_MONGODB_URI) in a database of its own.
 */
describeServiceOnStore("SQLite", () => ({ DATA_DIR: tempDir("zpk-stores-") }));
describeServiceOnStore(`MongoDB (${mongoServer()})`, () => ({ MONGODB_URI: mongoUri(), MONGODB_DB: freshDbName("zpk_svc") }));
