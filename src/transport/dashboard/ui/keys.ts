import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ApiKeyService, type Key, KeySchema } from "../../../../gen/apikeys/v1/api_key_service_pb.js";
import { api, isSessionGone, messageOf, type SessionInfo } from "./client.js";
import { field, localInput, metadataText, openDialog, parseMetadata } from "./dialogs.js";
import { announce, fmtShort, h, replace } from "./dom.js";
import { statusOf } from "./status.js";

type Can = { read: boolean; write: boolean; audit: boolean };

const PAGE_SIZE = 20;

/**
 * Key actions beyond issue/edit/revoke appear when the service has them (roll and disable come
 * with the key lifecycle work): the generated client is the source of truth for what exists.
 */
const methods = ApiKeyService.method as Record<string, unknown>;
export const HAS = { roll: "rollKey" in methods, disable: KeySchema.fields.some((f) => f.name === "enabled") };

/** The lifecycle calls, typed loosely so this page builds before and after they exist. */
type RollFn = (req: { id: string; graceSeconds?: number; graceStarts?: string }) => Promise<{ key?: Key; secret: string }>;
const lifecycle = api as unknown as { rollKey?: RollFn; updateKey: (req: Record<string, unknown>) => Promise<unknown> };
const isEnabled = (k: Key) => (k as Key & { enabled?: boolean }).enabled !== false;

export async function renderKeys(main: HTMLElement, session: SessionInfo, can: Can, ended: () => void, _keyId = ""): Promise<void> {
  const state = { includeInactive: false, instanceId: "", tokens: [""] as string[] };
  const notice = h("div", { id: "keys-notice", role: "status", class: "notice" });
  const tableWrap = h("div", { class: "table-wrap" });
  const pager = h("div", { class: "pager" });

  const inactive = h("input", { id: "include-inactive", type: "checkbox" });
  const instance = h("input", { id: "instance-filter", type: "text", placeholder: "any instance", size: 38, spellcheck: "false", value: session.instance_id ?? "" });
  if (session.instance_id) instance.setAttribute("readonly", "");
  const filters = h(
    "form",
    { class: "filters", "aria-label": "Filter keys" },
    h("div", { class: "check" }, inactive, h("label", { for: "include-inactive" }, "Include revoked and expired keys")),
    field("instance-filter", "Instance", instance),
    h("button", { type: "submit" }, "Apply"),
  );
  filters.addEventListener("submit", (e) => {
    e.preventDefault();
    state.includeInactive = inactive.checked;
    state.instanceId = instance.value.trim();
    state.tokens = [""];
    void load();
  });
  inactive.addEventListener("change", () => filters.requestSubmit());

  const issue = can.write ? h("button", { type: "button", class: "primary", id: "issue-key" }, "Issue a key") : null;
  issue?.addEventListener("click", () => issueDialog(session, () => void load(), notice));

  replace(
    main,
    h("div", { class: "page-head" }, h("h1", {}, "API keys"), issue),
    filters,
    notice,
    tableWrap,
    pager,
  );
  if (!can.read) return announce(notice, "This key lacks the scope api_keys:read, so it cannot list keys.", "error");

  async function load(): Promise<void> {
    const token = state.tokens[state.tokens.length - 1]!;
    try {
      const res = await api.listKeys({ pageSize: PAGE_SIZE, pageToken: token, includeInactive: state.includeInactive, instanceId: state.instanceId });
      replace(tableWrap, keyTable(res.data));
      const prev = h("button", { type: "button", disabled: state.tokens.length === 1 }, "Previous page");
      const next = h("button", { type: "button", disabled: !res.nextPageToken, id: "next-page" }, "Next page");
      prev.addEventListener("click", () => {
        state.tokens.pop();
        void load();
      });
      next.addEventListener("click", () => {
        state.tokens.push(res.nextPageToken!);
        void load();
      });
      replace(pager, prev, h("span", { class: "muted" }, `Page ${state.tokens.length}`), next);
    } catch (err) {
      if (isSessionGone(err)) return ended();
      announce(notice, messageOf(err), "error");
    }
  }

  function keyTable(keys: Key[]): HTMLElement {
    if (keys.length === 0) return h("p", { class: "empty" }, state.includeInactive ? "No keys yet." : "No active keys. Issue one, or include revoked and expired keys.");
    const head = ["Name", "Prefix", "Env", "Scopes", "Instance", "Created (UTC)", "Last used", "Requests", "Expires", "Status", can.write ? "Actions" : null]
      .filter((c): c is string => c !== null)
      .map((c) => h("th", { scope: "col" }, c));
    const rows = keys.map((k) => {
      const status = statusOf(k);
      const actions = can.write && status !== "revoked" && status !== "expired" ? rowActions(k) : null;
      return h(
        "tr",
        { "data-key-id": k.id },
        h("td", { class: "name" }, k.name, Object.keys(k.metadata).length ? h("div", { class: "meta" }, metadataText(k.metadata).replace(/\n/g, ", ")) : null,
          h("div", { class: "links" },
            can.audit ? h("a", { href: `#activity/${k.id}`, "aria-label": `Activity of ${k.prefix}` }, "Activity") : null,
            h("a", { href: `#usage/${k.id}`, "aria-label": `Usage of ${k.prefix}` }, "Usage"))),
        h("td", {}, h("code", {}, k.prefix)),
        h("td", {}, k.environment),
        h("td", {}, k.scopes.length ? k.scopes.join(", ") : h("span", { class: "muted" }, "all")),
        h("td", {}, k.instanceId ? h("code", { class: "small" }, k.instanceId) : h("span", { class: "muted" }, "any")),
        h("td", { class: "time" }, fmtShort(k.createdAt && timestampDate(k.createdAt))),
        h("td", { class: "time" }, k.lastUsedAt ? fmtShort(timestampDate(k.lastUsedAt)) : h("span", { class: "muted" }, "never")),
        h("td", { class: "num" }, k.totalRequests.toString()),
        h("td", { class: "time" }, k.expiresAt ? fmtShort(timestampDate(k.expiresAt)) : h("span", { class: "muted" }, "never")),
        h("td", {}, h("span", { class: `status status-${status.replace(" ", "-")}` }, status)),
        can.write ? h("td", { class: "actions" }, actions) : null,
      );
    });
    return h("table", {}, h("caption", { class: "visually-hidden" }, "API keys"), h("thead", {}, h("tr", {}, head)), h("tbody", {}, rows));
  }

  function rowActions(k: Key): HTMLElement[] {
    const edit = h("button", { type: "button", "aria-label": `Edit ${k.prefix}` }, "Edit");
    edit.addEventListener("click", () => editDialog(k, () => void load(), notice));
    const revoke = h("button", { type: "button", class: "danger", "aria-label": `Revoke ${k.prefix}` }, "Revoke");
    revoke.addEventListener("click", () => revokeDialog(k, () => void load(), notice));
    const out = [edit, revoke];
    // Slots for the key lifecycle RPCs: shown only when the generated client has them.
    if (HAS.disable) {
      const enabled = isEnabled(k);
      const toggle = h("button", { type: "button", "aria-label": `${enabled ? "Disable" : "Enable"} ${k.prefix}`, "data-action": "disable" }, enabled ? "Disable" : "Enable");
      toggle.addEventListener("click", async () => {
        try {
          await lifecycle.updateKey({ id: k.id, enabled: !enabled, updateMask: { paths: ["enabled"] } });
          announce(notice, `${enabled ? "Disabled" : "Enabled"} ${k.prefix}.`);
          void load();
        } catch (err) {
          if (isSessionGone(err)) return ended();
          announce(notice, messageOf(err), "error");
        }
      });
      out.splice(1, 0, toggle);
    }
    if (HAS.roll && lifecycle.rollKey) {
      const roll = h("button", { type: "button", "aria-label": `Roll ${k.prefix}`, "data-action": "roll" }, "Roll");
      roll.addEventListener("click", () => rollDialog(k, lifecycle.rollKey!, () => void load()));
      out.splice(1, 0, roll);
    }
    return out;
  }

  await load();
}

function issueDialog(session: SessionInfo, done: () => void, notice: HTMLElement): void {
  const name = h("input", { id: "issue-name", required: true, maxlength: 128, autocomplete: "off" });
  const env = h("select", { id: "issue-env" }, h("option", { value: "live" }, "live"), h("option", { value: "test" }, "test"));
  const scopes = h("input", { id: "issue-scopes", autocomplete: "off", spellcheck: "false", value: session.scopes.join(" ") });
  const instance = h("input", { id: "issue-instance", autocomplete: "off", spellcheck: "false", value: session.instance_id ?? "" });
  const expires = h("input", { id: "issue-expires", type: "datetime-local" });
  const metadata = h("textarea", { id: "issue-metadata", rows: 3, spellcheck: "false" });
  const error = h("p", { role: "alert", class: "notice error", id: "issue-error", hidden: true });
  const cancel = h("button", { type: "button" }, "Cancel");
  const form = h(
    "form",
    { method: "dialog" },
    field("issue-name", "Name", name),
    field("issue-env", "Environment", env),
    field("issue-scopes", "Scopes", scopes, "Space- or comma-separated; empty grants every scope your session holds."),
    field("issue-instance", "Instance", instance, "Bind the key to one instance (UUID); empty for any."),
    field("issue-expires", "Expires", expires, "Empty: never."),
    field("issue-metadata", "Metadata", metadata, "One key=value per line."),
    error,
    h("div", { class: "buttons" }, cancel, h("button", { type: "submit", class: "primary" }, "Issue key")),
  );
  const dialog = openDialog("Issue a key", [form], { id: "issue-dialog" });
  cancel.addEventListener("click", () => dialog.close());
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.hidden = true;
    try {
      const res = await api.issueKey({
        name: name.value.trim(),
        environment: env.value,
        scopes: scopes.value.split(/[\s,]+/).filter(Boolean),
        instanceId: instance.value.trim(),
        expiresAt: expires.value ? timestampFromDate(new Date(expires.value)) : undefined,
        metadata: parseMetadata(metadata.value),
      });
      dialog.close();
      secretDialog(res.key!, res.secret);
      done();
    } catch (err) {
      error.hidden = false;
      error.textContent = messageOf(err);
    }
  });
  void notice;
}

/** The secret, once: shown in a dialog that is removed from the DOM when it closes. */
function secretDialog(key: Key, secret: string): void {
  const code = h("code", { id: "secret", class: "secret" }, secret);
  const copied = h("span", { role: "status", class: "muted", id: "copy-status" });
  const copy = h("button", { type: "button", id: "copy-secret", class: "primary" }, "Copy");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(secret);
      copied.textContent = "Copied to the clipboard.";
    } catch {
      const range = document.createRange();
      range.selectNodeContents(code);
      getSelection()?.removeAllRanges();
      getSelection()?.addRange(range);
      copied.textContent = "Select and copy the key by hand (the clipboard is not available).";
    }
  });
  const close = h("button", { type: "button", id: "close-secret" }, "I have copied it — close");
  const dialog = openDialog(
    `Key ${key.prefix} issued`,
    [
      h("p", { class: "warning" }, h("strong", {}, "You will not see this again. "), "Copy the key now and keep it somewhere safe: zpk stores only a digest of it."),
      h("div", { class: "secret-box" }, code, copy),
      copied,
      h("div", { class: "buttons" }, close),
    ],
    { id: "secret-dialog" },
  );
  close.addEventListener("click", () => dialog.close());
}

function editDialog(k: Key, done: () => void, notice: HTMLElement): void {
  const name = h("input", { id: "edit-name", required: true, maxlength: 128, value: k.name });
  const expires = h("input", { id: "edit-expires", type: "datetime-local", value: localInput(k.expiresAt ? timestampDate(k.expiresAt) : null) });
  const metadata = h("textarea", { id: "edit-metadata", rows: 3, spellcheck: "false" });
  metadata.value = metadataText(k.metadata);
  const error = h("p", { role: "alert", class: "notice error", hidden: true });
  const cancel = h("button", { type: "button" }, "Cancel");
  const form = h(
    "form",
    {},
    field("edit-name", "Name", name),
    field("edit-expires", "Expires", expires, "Empty: never."),
    field("edit-metadata", "Metadata", metadata, "One key=value per line; replaces all tags."),
    error,
    h("div", { class: "buttons" }, cancel, h("button", { type: "submit", class: "primary" }, "Save")),
  );
  const dialog = openDialog(`Edit ${k.prefix}`, [form], { id: "edit-dialog" });
  cancel.addEventListener("click", () => dialog.close());
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api.updateKey({
        id: k.id,
        name: name.value.trim(),
        metadata: parseMetadata(metadata.value),
        expiresAt: expires.value ? timestampFromDate(new Date(expires.value)) : undefined,
        updateMask: { paths: ["name", "metadata", "expires_at"] },
      });
      dialog.close();
      announce(notice, `Saved ${k.prefix}.`);
      done();
    } catch (err) {
      error.hidden = false;
      error.textContent = messageOf(err);
    }
  });
}

/** Roll: a new secret (shown once), the old key kept working for a grace period. */
function rollDialog(k: Key, rollKey: RollFn, done: () => void): void {
  const grace = h(
    "select",
    { id: "roll-grace" },
    h("option", { value: "0" }, "stop at once"),
    h("option", { value: "3600" }, "1 hour"),
    h("option", { value: "86400", selected: true }, "1 day"),
    h("option", { value: "604800" }, "7 days"),
  );
  const starts = h("select", { id: "roll-starts" }, h("option", { value: "now" }, "now"), h("option", { value: "first_use" }, "when the new key is first used"));
  const error = h("p", { role: "alert", class: "notice error", hidden: true });
  const cancel = h("button", { type: "button" }, "Cancel");
  const form = h(
    "form",
    {},
    h("p", {}, "A new key replaces ", h("code", {}, k.prefix), ` (${k.name}). The old key keeps working during the grace period, then stops.`),
    field("roll-grace", "Old key keeps working for", grace),
    field("roll-starts", "Grace period starts", starts),
    error,
    h("div", { class: "buttons" }, cancel, h("button", { type: "submit", class: "primary" }, `Roll ${k.prefix}`)),
  );
  const dialog = openDialog(`Roll ${k.prefix}`, [form], { id: "roll-dialog" });
  cancel.addEventListener("click", () => dialog.close());
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const res = await rollKey({ id: k.id, graceSeconds: Number(grace.value), graceStarts: starts.value });
      dialog.close();
      secretDialog(res.key!, res.secret);
      done();
    } catch (err) {
      error.hidden = false;
      error.textContent = messageOf(err);
    }
  });
}

function revokeDialog(k: Key, done: () => void, notice: HTMLElement): void {
  const cancel = h("button", { type: "button" }, "Cancel");
  const confirm = h("button", { type: "button", class: "danger", id: "confirm-revoke" }, `Revoke ${k.prefix}`);
  const error = h("p", { role: "alert", class: "notice error", hidden: true });
  const dialog = openDialog(`Revoke ${k.prefix}?`, [
    h("p", {}, "The key ", h("code", {}, k.prefix), ` (${k.name}) will stop authenticating at once, everywhere. This cannot be undone.`),
    error,
    h("div", { class: "buttons" }, cancel, confirm),
  ], { id: "revoke-dialog" });
  cancel.focus();
  cancel.addEventListener("click", () => dialog.close());
  confirm.addEventListener("click", async () => {
    try {
      await api.revokeKey({ id: k.id });
      dialog.close();
      announce(notice, `Revoked ${k.prefix}.`);
      done();
    } catch (err) {
      error.hidden = false;
      error.textContent = messageOf(err);
    }
  });
}
