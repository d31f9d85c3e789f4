import { h, type Child } from "./dom.js";

/**
 * A modal <dialog> (focus moves into it, Escape closes it, the page behind is inert) that is
 * removed from the DOM when it closes, so nothing it showed (a secret above all) stays behind.
 */
export function openDialog(title: string, body: Child[], opts: { id?: string; onClose?: () => void } = {}): HTMLDialogElement {
  const heading = h("h2", { id: `${opts.id ?? "dialog"}-title` }, title);
  const dialog = h("dialog", { id: opts.id ?? null, "aria-labelledby": `${opts.id ?? "dialog"}-title` }, heading, ...body);
  dialog.addEventListener("close", () => {
    dialog.remove();
    opts.onClose?.();
  });
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

/** A labelled form field. */
export function field(id: string, label: string, input: HTMLElement, help?: string): HTMLElement {
  if (help) input.setAttribute("aria-describedby", `${id}-help`);
  return h("div", { class: "field" }, h("label", { for: id }, label), input, help ? h("p", { id: `${id}-help`, class: "help" }, help) : null);
}

/** "k=v" lines <-> a metadata map. */
export function parseMetadata(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const t = line.trim();
    if (!t) continue;
    const eq = t.indexOf("=");
    if (eq <= 0) throw new Error(`metadata line "${t}" must be key=value`);
    out[t.slice(0, eq).trim()] = t.slice(eq + 1).trim();
  }
  return out;
}

export const metadataText = (m: Record<string, string>) =>
  Object.entries(m).map(([k, v]) => `${k}=${v}`).join("\n");

/** datetime-local value (local time) <-> Date. */
export const localInput = (d: Date | null) => {
  if (!d) return "";
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
};
