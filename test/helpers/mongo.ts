import { randomBytes } from "node:crypto";
import { inject } from "vitest";

/** The suite's MongoDB-compatible server (see mongo-global-setup.ts) and a fresh database name. */
export const mongoUri = () => inject("mongoUri");
export const mongoServer = () => inject("mongoServer");
export const freshDbName = (prefix = "zpk_test") => `${prefix}_${randomBytes(6).toString("hex")}`;
