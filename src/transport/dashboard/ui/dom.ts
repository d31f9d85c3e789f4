/**
 * The page's only way to build DOM: elements with attributes and children, where every string
 * child becomes a Text node (textContent semantics). Nothing user-controlled ever reaches
 * innerHTML, so a key named `<img src=x onerror=alert(1)>` shows as those characters.
 */
export type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | boolean | number | EventListener | null | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: (Child | Child[])[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v as EventListener);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

export function append(el: Element, children: (Child | Child[])[]): void {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
}

/** Replaces an element's content. */
export function replace(el: Element, ...children: (Child | Child[])[]): void {
  el.replaceChildren();
  append(el, children);
}

export const fmtTime = (d: Date | undefined | null) =>
  d ? d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC") : "—";

/** Minutes precision, for the keys table (column headers say UTC). */
export const fmtShort = (d: Date | undefined | null) => (d ? d.toISOString().slice(0, 16).replace("T", " ") : "—");

/** A status line read out by screen readers. */
export function announce(region: HTMLElement, text: string, kind: "info" | "error" = "info"): void {
  region.className = `notice ${kind}`;
  region.textContent = text;
}
