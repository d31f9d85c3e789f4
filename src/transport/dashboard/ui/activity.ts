import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { AuditEvent, Key } from "../../../../gen/apikeys/v1/api_key_service_pb.js";
import { api, isSessionGone, messageOf, type SessionInfo } from "./client.js";
import { field } from "./dialogs.js";
import { announce, fmtTime, h, replace } from "./dom.js";

type Can = { read: boolean; write: boolean; audit: boolean };

const ACTIONS = ["api_key.issued", "api_key.updated", "api_key.revoked", "auth.failed", "rate_limit.exceeded", "rate_limit.updated"];
const PAGE_SIZE = 25;

/** Keys to pick from in filters (first 100, revoked and expired included). */
export async function keyChoices(): Promise<Key[]> {
  try {
    return (await api.listKeys({ pageSize: 100, includeInactive: true })).data;
  } catch {
    return [];
  }
}

/** The audit trail, newest first, with filters by action, key and time range, paginated. */
export async function renderActivity(main: HTMLElement, _session: SessionInfo, can: Can, ended: () => void, keyId = ""): Promise<void> {
  const state = { action: "", key: keyId, since: "", until: "", tokens: [""] as string[] };
  const notice = h("div", { role: "status", class: "notice", id: "activity-notice" });
  const tableWrap = h("div", { class: "table-wrap" });
  const pager = h("div", { class: "pager" });
  const action = h("select", { id: "filter-action" }, h("option", { value: "" }, "All actions"), ACTIONS.map((a) => h("option", { value: a }, a)));
  const key = h("select", { id: "filter-key" }, h("option", { value: "" }, "All keys"));
  const since = h("input", { id: "filter-since", type: "datetime-local" });
  const until = h("input", { id: "filter-until", type: "datetime-local" });
  const filters = h(
    "form",
    { class: "filters", "aria-label": "Filter activity" },
    field("filter-action", "Action", action),
    field("filter-key", "Key", key),
    field("filter-since", "From", since),
    field("filter-until", "Until", until),
    h("button", { type: "submit" }, "Apply"),
  );
  filters.addEventListener("submit", (e) => {
    e.preventDefault();
    Object.assign(state, { action: action.value, key: key.value, since: since.value, until: until.value, tokens: [""] });
    void load();
  });
  replace(main, h("div", { class: "page-head" }, h("h1", {}, "Activity")), filters, notice, tableWrap, pager);
  if (!can.audit) return announce(notice, "This key lacks the scope audit:read, so it cannot read the activity log.", "error");
  if (can.read) for (const k of await keyChoices()) key.append(h("option", { value: k.id, selected: k.id === keyId }, `${k.name} (${k.prefix})`));

  async function load(): Promise<void> {
    try {
      const res = await api.listAuditEvents({
        pageSize: PAGE_SIZE,
        pageToken: state.tokens[state.tokens.length - 1]!,
        action: state.action,
        targetId: state.key,
        since: state.since ? timestampFromDate(new Date(state.since)) : undefined,
        until: state.until ? timestampFromDate(new Date(state.until)) : undefined,
      });
      announce(notice, "");
      replace(tableWrap, eventTable(res.data));
      const prev = h("button", { type: "button", disabled: state.tokens.length === 1 }, "Newer");
      const next = h("button", { type: "button", disabled: !res.nextPageToken }, "Older");
      prev.addEventListener("click", () => (state.tokens.pop(), void load()));
      next.addEventListener("click", () => (state.tokens.push(res.nextPageToken!), void load()));
      replace(pager, prev, h("span", { class: "muted" }, `Page ${state.tokens.length}`), next);
    } catch (err) {
      if (isSessionGone(err)) return ended();
      announce(notice, messageOf(err), "error");
    }
  }
  await load();
}

function eventTable(events: AuditEvent[]): HTMLElement {
  if (events.length === 0) return h("p", { class: "empty" }, "No events match.");
  const head = ["Time", "Action", "Key", "Actor", "Outcome", "Reason", "Count", "IP", "User agent"].map((c) => h("th", { scope: "col" }, c));
  const rows = events.map((e) =>
    h(
      "tr",
      { "data-action": e.action },
      h("td", {}, fmtTime(e.time && timestampDate(e.time))),
      h("td", {}, h("code", {}, e.action)),
      h("td", {}, e.target ? [h("code", {}, e.target.prefix), " ", e.target.name] : h("span", { class: "muted" }, "—")),
      h("td", {}, e.actor ? (e.actor.type === "key" ? h("code", {}, e.actor.prefix ?? e.actor.keyId ?? "key") : `${e.actor.type}${e.actor.name ? `: ${e.actor.name}` : ""}`) : "—"),
      h("td", {}, h("span", { class: `status status-${e.outcome === "success" ? "active" : "revoked"}` }, e.outcome)),
      h("td", { class: "reason" }, e.reason ?? ""),
      h("td", { class: "num" }, e.count > 1 ? h("strong", { title: "aggregated occurrences" }, `×${e.count}`) : "1"),
      h("td", {}, e.ip ?? ""),
      h("td", { class: "ua" }, e.userAgent ?? ""),
    ),
  );
  return h("table", {}, h("caption", { class: "visually-hidden" }, "Audit events, newest first"), h("thead", {}, h("tr", {}, head)), h("tbody", {}, rows));
}
