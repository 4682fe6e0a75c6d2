/**
 * Small DOM helpers. Every piece of dataset text goes through textContent (h(..., text) / setText):
 * nothing in the webviews ever assigns innerHTML.
 */

export type Attrs = Record<string, string | number | boolean | null | undefined>;

/** Creates an element in the document of `parentOrDoc`; `text` is set as textContent. */
export function h<K extends keyof HTMLElementTagNameMap>(doc: Document, tag: K, attrs?: Attrs, text?: string): HTMLElementTagNameMap[K];
export function h(doc: Document, tag: string, attrs?: Attrs, text?: string): HTMLElement;
export function h(doc: Document, tag: string, attrs: Attrs = {}, text?: string): HTMLElement {
  const el = doc.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = String(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  if (text !== undefined) el.textContent = text;
  return el;
}

export function clear(el: Element): void {
  while (el.firstChild) el.removeChild(el.firstChild);
}

/** Appends children, skipping null/undefined; strings become text nodes. */
export function append(parent: Node, ...children: (Node | string | null | undefined | false)[]): void {
  const doc = parent.ownerDocument ?? (parent as Document);
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    parent.appendChild(typeof c === 'string' ? doc.createTextNode(c) : c);
  }
}

/** A codicon (from the extension's own codicon.css). Decorative unless a label is given. */
export function icon(doc: Document, name: string, label?: string): HTMLElement {
  const el = h(doc, 'span', { class: `codicon codicon-${name}` });
  if (label) {
    el.setAttribute('role', 'img');
    el.setAttribute('aria-label', label);
  } else el.setAttribute('aria-hidden', 'true');
  return el;
}

let styleNonce: string | undefined;

/**
 * The CSP nonce of the page, read from the running script (the host puts the same nonce on every script
 * and on style-src). Must be called while the bundle's top-level code runs: document.currentScript is
 * only set then. The views call this once at start-up.
 */
export function captureNonce(doc: Document = document): string | undefined {
  const s = doc.currentScript as HTMLScriptElement | null;
  const n = s?.nonce || s?.getAttribute('nonce') || undefined;
  if (n) styleNonce = n;
  return styleNonce;
}

/** Injects a stylesheet as <style nonce=...> (allowed by style-src 'nonce-...'). */
export function injectStyles(doc: Document, id: string, cssText: string): void {
  if (doc.getElementById(id)) return;
  const style = doc.createElement('style');
  style.id = id;
  if (styleNonce) style.setAttribute('nonce', styleNonce);
  style.textContent = cssText;
  doc.head.appendChild(style);
}

/** Makes whitespace in a token visible: "·" for spaces, "⏎" for newlines, "→" for tabs. */
export function visibleToken(text: string): string {
  if (text.length === 0) return '∅';
  return text
    .replace(/\r\n|\n|\r/g, '⏎')
    .replace(/\t/g, '→')
    .replace(/ /g, '·');
}

export function formatPercent(fraction: number, digits = 1): string {
  if (!Number.isFinite(fraction)) return '–';
  return `${(fraction * 100).toFixed(digits)}%`;
}

/** Width of an element, with a fallback for detached / unlaid-out elements (and for linkedom in tests). */
export function measureWidth(el: Element, fallback: number): number {
  const w = (el as HTMLElement).clientWidth;
  return typeof w === 'number' && w > 0 ? w : fallback;
}

/** Calls fn when the element's width changes (no-op where ResizeObserver is missing). */
export function observeWidth(el: Element, fn: (width: number) => void): () => void {
  const RO = (globalThis as { ResizeObserver?: typeof ResizeObserver }).ResizeObserver;
  if (!RO) return () => {};
  let last = -1;
  let frame = 0;
  const ro = new RO((entries) => {
    const w = Math.round(entries[entries.length - 1]!.contentRect.width);
    if (w === last || w === 0) return;
    const first = last < 0;
    last = w;
    if (first) return; // the initial observation: the chart was just drawn at this width
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(() => fn(w));
  });
  ro.observe(el);
  return () => ro.disconnect();
}

export interface Section {
  el: HTMLElement;
  /** The row beside the title (selects, export buttons). */
  tools: HTMLElement;
  body: HTMLElement;
}

/** A titled section (codicon and h2, a tools row, a body), appended to `parent`. */
export function section(parent: Element, title: string, iconName: string, testid: string, tools: HTMLElement[] = []): Section {
  const doc = parent.ownerDocument;
  const el = h(doc, 'section', { class: 'section', 'data-testid': testid });
  const head = h(doc, 'div', { class: 'section-head' });
  const h2 = h(doc, 'h2', {});
  append(h2, icon(doc, iconName), title);
  const toolRow = h(doc, 'div', { class: 'section-tools' });
  toolRow.append(...tools);
  head.append(h2, toolRow);
  const body = h(doc, 'div', { class: 'section-body' });
  el.append(head, body);
  parent.append(el);
  return { el, tools: toolRow, body };
}

export interface LabeledSelect {
  wrap: HTMLElement;
  /** Shows another value without firing onChange. */
  set(value: string): void;
}

/** A labelled vscode-single-select; options are [value, text, disabled?]. */
export function labeledSelect(
  doc: Document,
  testid: string,
  label: string,
  options: [value: string, text: string, disabled?: boolean][],
  value: string,
  onChange: (v: string) => void,
): LabeledSelect {
  const wrap = h(doc, 'label', { class: 'inline-select' });
  const sel = h(doc, 'vscode-single-select', { 'data-testid': testid, 'aria-label': label });
  const opts = options.map(([v, text, disabled]) => h(doc, 'vscode-option', { value: v, selected: v === value, disabled: !!disabled }, text));
  sel.append(...opts);
  sel.addEventListener('change', () => onChange(String((sel as unknown as { value: string }).value)));
  append(wrap, h(doc, 'span', { class: 'muted' }, label), sel);
  const set = (v: string) => {
    (sel as unknown as { value: string }).value = v;
    opts.forEach((o) => o.toggleAttribute('selected', o.getAttribute('value') === v));
  };
  return { wrap, set };
}

/** A headline figure card: label, value (with a test id) and an optional line under it. */
export function figure(doc: Document, label: string, value: string, testid: string, sub?: string): HTMLElement {
  const c = h(doc, 'div', { class: 'card figure' });
  append(
    c,
    h(doc, 'div', { class: 'figure-label muted' }, label),
    h(doc, 'div', { class: 'figure-value', 'data-testid': testid }, value),
    sub ? h(doc, 'div', { class: 'figure-sub muted' }, sub) : null,
  );
  return c;
}
