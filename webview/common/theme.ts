/** Theme colours come from VS Code's CSS variables; canvases need them resolved to concrete colours. */

export function cssVar(el: Element, name: string, fallback: string): string {
  const view = el.ownerDocument?.defaultView;
  if (!view || typeof view.getComputedStyle !== 'function') return fallback;
  const v = view.getComputedStyle(el).getPropertyValue(name);
  return v && v.trim() ? v.trim() : fallback;
}

/** VS Code swaps the body classes (vscode-light / vscode-dark / vscode-high-contrast) on theme change. */
export function onThemeChange(doc: Document, fn: () => void): () => void {
  const MO = (globalThis as { MutationObserver?: typeof MutationObserver }).MutationObserver;
  if (!MO || !doc.body) return () => {};
  const mo = new MO(() => fn());
  mo.observe(doc.body, { attributes: true, attributeFilter: ['class', 'data-vscode-theme-kind'] });
  return () => mo.disconnect();
}
