import { monotonicFactory } from "ulid";

/**
 * Ids are `key_` / `evt_` + ULID (SPEC §2, §7). A monotonic factory keeps ids issued within the
 * same millisecond strictly increasing, so "newest first" by id is a total, stable order that
 * page tokens can rely on.
 */
const ulid = monotonicFactory();

export const newKeyId = (now: number) => `key_${ulid(now)}`;
export const newEventId = (now: number) => `evt_${ulid(now)}`;

export const KEY_ID_PATTERN = /^key_[0-9A-HJKMNP-TV-Z]{26}$/;
export const EVENT_ID_PATTERN = /^evt_[0-9A-HJKMNP-TV-Z]{26}$/;
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const isUuid = (s: string) => UUID_PATTERN.test(s);
/** UUIDs are compared and stored lower-case so `ABC…` and `abc…` are one customer. */
export const normalizeUuid = (s: string) => s.toLowerCase();
