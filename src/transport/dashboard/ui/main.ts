import { abilities, dashboardPost, errorText, type SessionInfo } from "./client.js";
import { h, replace } from "./dom.js";
import { renderActivity } from "./activity.js";
import { renderKeys } from "./keys.js";
import { renderUsage } from "./usage.js";

/**
 * The dashboard page: sign-in, then Keys, Activity and Usage (hash routes, so the server serves
 * one shell). Session state lives in an HttpOnly cookie the script cannot read; the key typed at
 * sign-in is sent once and dropped (the field is cleared, nothing is stored in the browser).
 */
const root = document.getElementById("app")!;

const PAGES = [
  { id: "keys", title: "Keys", render: renderKeys },
  { id: "activity", title: "Activity", render: renderActivity },
  { id: "usage", title: "Usage", render: renderUsage },
] as const;

async function start(): Promise<void> {
  const res = await dashboardPost("session");
  if (res.status !== 200) return showSignIn();
  const session = (await res.json()) as SessionInfo;
  showApp(session);
}

function showSignIn(message?: string): void {
  const status = h("p", { id: "sign-in-status", role: "status", class: message ? "notice error" : "notice" }, message ?? "");
  const input = h("input", {
    id: "key", name: "key", type: "password", autocomplete: "off", spellcheck: "false",
    required: true, placeholder: "zpk_live_…", "aria-describedby": "key-help sign-in-status",
  });
  const form = h(
    "form",
    { class: "card", id: "sign-in" },
    h("label", { for: "key" }, "API key"),
    input,
    h("p", { id: "key-help", class: "help" }, "The dashboard acts with exactly this key's scopes. The key is not stored in your browser."),
    h("button", { type: "submit", class: "primary" }, "Sign in"),
    status,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const key = input.value;
    input.value = "";
    status.textContent = "Signing in…";
    const res = await dashboardPost("sign-in", { key });
    if (res.status === 204) return void start();
    status.className = "notice error";
    status.textContent = await errorText(res);
    input.focus();
  });
  replace(root, h("main", { class: "narrow", id: "main" }, h("h1", {}, "Sign in to manage your API keys"), form));
  input.focus();
}

function showApp(session: SessionInfo): void {
  const can = abilities(session);
  const main = h("main", { id: "main", tabindex: "-1" });
  const links = PAGES.map((p) => h("a", { href: `#${p.id}`, "data-page": p.id }, p.title));
  const signOut = h("button", { type: "button", id: "sign-out" }, "Sign out");
  signOut.addEventListener("click", async () => {
    await dashboardPost("sign-out");
    location.hash = "";
    showSignIn();
  });
  const who = session.key ? `${session.key.name} (${session.key.prefix})` : "portal session";
  const back = session.return_url && /^https?:\/\//.test(session.return_url) ? h("a", { href: session.return_url, class: "back" }, "← Back to the application") : null;
  const header = h(
    "header",
    { class: "top" },
    h("a", { href: "#main", class: "skip" }, "Skip to content"),
    h("span", { class: "brand" }, "zpk"),
    h("nav", { "aria-label": "Dashboard" }, links),
    h("span", { class: "who" }, h("span", { class: "muted" }, "Signed in as "), who, h("span", { class: "muted" }, ` · customer ${session.customer_id}`),
      session.instance_id ? h("span", { class: "muted" }, ` · instance ${session.instance_id}`) : null,
      !can.write ? h("span", { class: "badge" }, "read-only") : null),
    back,
    signOut,
  );
  replace(root, header, main);
  const route = () => {
    // `#activity/key_…` and `#usage/key_…` open a page filtered to one key.
    const [id = "keys", param = ""] = location.hash.replace(/^#/, "").split("/");
    const page = PAGES.find((p) => p.id === id) ?? PAGES[0];
    for (const a of links) {
      if (a.dataset.page === page.id) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    document.title = `${page.title} — zpk`;
    void page.render(main, session, can, () => showSignIn("Your session has ended. Sign in again."), /^key_[0-9A-Za-z]+$/.test(param) ? param : "");
  };
  window.onhashchange = route;
  route();
}

void start();
