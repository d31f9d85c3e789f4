import { timestampDate } from "@bufbuild/protobuf/wkt";
import uPlot from "uplot";
import { DenialReason, type GetUsageResponse } from "../../../../gen/apikeys/v1/api_key_service_pb.js";
import { keyChoices } from "./activity.js";
import { api, isSessionGone, messageOf, type SessionInfo } from "./client.js";
import { field } from "./dialogs.js";
import { announce, h, replace } from "./dom.js";

type Can = { read: boolean; write: boolean; audit: boolean };

const HOUR = 3600;
const OUTCOMES: { id: string; label: string; color: string; reason?: DenialReason }[] = [
  { id: "valid", label: "valid", color: "#1a7f37" },
  { id: "revoked", label: "revoked", color: "#cf222e", reason: DenialReason.REVOKED },
  { id: "expired", label: "expired", color: "#9a6700", reason: DenialReason.EXPIRED },
  { id: "wrong_instance", label: "wrong instance", color: "#8250df", reason: DenialReason.WRONG_INSTANCE },
  { id: "missing_scope", label: "missing scope", color: "#0969da", reason: DenialReason.MISSING_SCOPE },
  { id: "rate_limited", label: "rate limited", color: "#bc4c00", reason: DenialReason.RATE_LIMITED },
];

/** Authentications per hour over the last 7 days (valid and each denial reason), per key or for all. */
export async function renderUsage(main: HTMLElement, _session: SessionInfo, can: Can, ended: () => void, keyId = ""): Promise<void> {
  const notice = h("div", { role: "status", class: "notice", id: "usage-notice" });
  const key = h("select", { id: "usage-key" }, h("option", { value: "" }, "All keys"));
  const chart = h("div", { class: "chart", id: "usage-chart", role: "img", "aria-label": "Authentications per hour, last 7 days" });
  const totals = h("div", { id: "usage-totals" });
  const form = h("form", { class: "filters", "aria-label": "Usage of" }, field("usage-key", "Key", key), h("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (e) => (e.preventDefault(), void load()));
  key.addEventListener("change", () => void load());
  replace(main, h("div", { class: "page-head" }, h("h1", {}, "Usage")), h("p", { class: "help" }, "Authentications per hour over the last 7 days (UTC hours). The same numbers are available from GetUsage and GET /v1/usage."), form, notice, chart, totals);
  if (!can.read) return announce(notice, "This key lacks the scope api_keys:read, so it cannot read usage.", "error");
  for (const k of await keyChoices()) key.append(h("option", { value: k.id, selected: k.id === keyId }, `${k.name} (${k.prefix})`));
  let plot: uPlot | null = null;

  async function load(): Promise<void> {
    let res: GetUsageResponse;
    try {
      res = await api.getUsage({ keyId: key.value });
    } catch (err) {
      if (isSessionGone(err)) return ended();
      return announce(notice, messageOf(err), "error");
    }
    const since = Math.floor(timestampDate(res.since!).getTime() / 1000);
    const until = Math.floor(timestampDate(res.until!).getTime() / 1000);
    const n = Math.max(1, Math.ceil((until - since) / HOUR));
    const xs = Array.from({ length: n }, (_, i) => since + i * HOUR);
    const series = OUTCOMES.map(() => new Array<number>(n).fill(0));
    const sums = OUTCOMES.map(() => 0);
    for (const b of res.buckets) {
      const i = Math.floor((timestampDate(b.start!).getTime() / 1000 - since) / HOUR);
      if (i < 0 || i >= n) continue;
      series[0]![i]! += Number(b.valid);
      sums[0]! += Number(b.valid);
      for (const d of b.denied) {
        const j = OUTCOMES.findIndex((o) => o.reason === d.reason);
        if (j > 0) {
          series[j]![i]! += Number(d.count);
          sums[j]! += Number(d.count);
        }
      }
    }
    announce(notice, "");
    plot?.destroy();
    chart.replaceChildren();
    const width = Math.max(320, Math.min(1100, main.clientWidth - 16));
    plot = new uPlot(
      {
        width,
        height: 300,
        scales: { x: { time: true } },
        axes: [{}, { label: "per hour" }],
        series: [{}, ...OUTCOMES.map((o) => ({ label: o.label, stroke: o.color, width: 2, points: { show: false } }))],
      },
      [xs, ...series],
      chart,
    );
    replace(
      totals,
      h(
        "table",
        { class: "totals" },
        h("caption", {}, "Totals over the window"),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Outcome"), h("th", { scope: "col" }, "Authentications"))),
        h("tbody", {}, OUTCOMES.map((o, i) => h("tr", { "data-outcome": o.id }, h("th", { scope: "row" }, o.label), h("td", { class: "num" }, String(sums[i]))))),
      ),
    );
  }
  await load();
}
