/**
 * Routing map: tokens (columns) x layers (rows). Each cell shows the token's k chosen experts in that
 * layer as k vertical stripes coloured by expert id (palette.ts), widths proportional to the gate weights
 * (normalised within the cell, so un-renormalised OLMoE weights still fill it).
 *
 * Rendering: the cells are painted into canvas tiles (one per ~1024 CSS px of tokens, devicePixelRatio
 * aware) that sit inside the horizontally scrolling track, so the browser scrolls them natively (no
 * per-frame redraw); tiles are painted lazily as they come near the viewport and released when far away.
 * Painting writes pixels straight into an ImageData buffer (one row per layer, then copied down the rows),
 * far cheaper than thousands of fillRect calls. Hover/selection/highlight are absolutely positioned
 * elements over the tiles. Layer labels and token headers are DOM, one element each (text via
 * textContent); off-screen headers skip rendering via content-visibility.
 */
import type { Routing } from '../../src/shared/protocol';
import { tokenRoute } from '../../src/analysis/trace';
import { clear, h, visibleToken } from '../common/dom';
import { cssVar } from '../common/theme';
import { expertPalette } from './palette';
import type { ChartUpdate } from './types';

export interface RoutingMapData {
  routing: Routing;
  /** Token texts (raw; whitespace is made visible for display). */
  tokens: readonly string[];
  /** The decoder layer of each routing row (src/analysis/layers.ts); absent: row i is layer i. */
  layerOfRow?: readonly number[];
}

export interface RoutingMapOptions {
  /** Column width in CSS px (default 16). */
  cellWidth?: number;
  /** Row height in CSS px (default 18). */
  cellHeight?: number;
  /** Height of the token header row (default 72). */
  headerHeight?: number;
  /** Width of the layer label column (default 36). */
  labelWidth?: number;
  /** Click on a cell, or Enter / Space on the keyboard cursor. */
  onCellClick?: (layer: number, token: number) => void;
  /** Pointer over a token column (cells or header), or the keyboard cursor moving; null when it leaves. */
  onTokenHover?: (token: number | null) => void;
  /** Click / Enter on a token header, or Shift+Enter in the grid (e.g. reveal the token in the editor). */
  onTokenActivate?: (token: number) => void;
  ariaLabel?: string;
}

export interface RoutingMapUpdate extends ChartUpdate<RoutingMapData> {
  /** Outlines a token column and its header; reveal scrolls it into view. */
  highlightToken(index: number | null, reveal?: boolean): void;
  /** Marks a cell as selected (e.g. the one whose gate distribution is shown). */
  select(cell: { layer: number; token: number } | null): void;
  /** Repaints every tile (e.g. after a devicePixelRatio change). */
  redraw(): void;
  /** Horizontal scroll position of the token track (get; set when a value is given). */
  scrollLeft(value?: number): number;
  /** Draws the whole map (labels, headers, all cells) to a new canvas, for PNG export. */
  renderFull(scale?: number): HTMLCanvasElement | null;
  /** Milliseconds spent painting tiles in the last paint pass (for the benchmark). */
  lastDrawMs(): number;
}

interface Cell {
  layer: number;
  token: number;
}

const MAX_CANVAS_PX = 32000;
const TILE_CSS_PX = 1024;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([0x01020304]).buffer)[0] === 4;

function packColor(hex: string): number {
  const v = parseInt(hex.slice(1), 16);
  const r = (v >> 16) & 255;
  const g = (v >> 8) & 255;
  const b = v & 255;
  return LITTLE_ENDIAN ? ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0 : ((r << 24) | (g << 16) | (b << 8) | 255) >>> 0;
}

/**
 * Paints cells of tokens [first, last] into a 32-bit RGBA pixel buffer of width W (device px), with the
 * token grid origin at device x = x0 (token t starts at x0 + t * cellW * s) and y = y0.
 */
function paintCells(
  buf: Uint32Array,
  W: number,
  H: number,
  r: Routing,
  colors: Uint32Array,
  first: number,
  last: number,
  x0: number,
  y0: number,
  s: number,
  cellW: number,
  cellH: number,
  gap: number,
): void {
  const T = r.numTokens;
  const k = r.topK;
  const te = r.topExperts;
  const tw = r.topWeights;
  const nc = colors.length;
  for (let l = 0; l < r.numLayers; l++) {
    const ya = Math.max(0, y0 + Math.round(l * cellH * s));
    const yb = Math.min(H, y0 + Math.round((l * cellH + cellH - gap) * s));
    if (yb <= ya) continue;
    const row = ya * W;
    for (let t = first; t <= last; t++) {
      const xa = x0 + Math.round(t * cellW * s);
      const xb = x0 + Math.round((t * cellW + cellW - gap) * s);
      const span = xb - xa;
      const base = (l * T + t) * k;
      let sum = 0;
      for (let j = 0; j < k; j++) {
        const w = tw[base + j]!;
        if (w > 0) sum += w;
      }
      let cum = 0;
      let xs = xa;
      for (let j = 0; j < k; j++) {
        const w = tw[base + j]!;
        cum += sum > 0 ? (w > 0 ? w : 0) / sum : 1 / k;
        const xe = j === k - 1 ? xb : xa + Math.round(cum * span);
        const a = xs < 0 ? 0 : xs;
        const b = xe > W ? W : xe;
        if (b > a) buf.fill(colors[te[base + j]! % nc]!, row + a, row + b);
        xs = xe;
      }
    }
    for (let y = ya + 1; y < yb; y++) buf.copyWithin(y * W, row, row + W);
  }
}

export function routingMap(container: HTMLElement, data: RoutingMapData, options: RoutingMapOptions = {}): RoutingMapUpdate {
  const doc = container.ownerDocument;
  const win = doc.defaultView;
  const cellW = options.cellWidth ?? 16;
  const cellH = options.cellHeight ?? 18;
  const headerH = options.headerHeight ?? 72;
  const labelW = options.labelWidth ?? 36;
  const gap = 1;
  const tileTokens = Math.max(8, Math.floor(TILE_CSS_PX / cellW));
  const tileW = tileTokens * cellW;

  let current = data;
  /** Rows are labelled by decoder layer: a model with dense layers has fewer rows than layers. */
  const layerOf = (row: number): number => current.layerOfRow?.[row] ?? row;
  let highlighted: number | null = null;
  let selected: Cell | null = null;
  let hover: Cell | null = null;
  let cursor: Cell | null = null;
  let drawMs = 0;
  let frame = 0;
  let colors = new Uint32Array(0);
  let dpr = win?.devicePixelRatio || 1;

  clear(container);
  const root = h(doc, 'div', { class: 'rm', 'data-testid': 'routing-map' });
  root.style.setProperty('--rm-cell-w', `${cellW}px`);
  root.style.setProperty('--rm-cell-h', `${cellH}px`);
  root.style.setProperty('--rm-header-h', `${headerH}px`);
  root.style.setProperty('--rm-label-w', `${labelW}px`);
  const labels = h(doc, 'div', { class: 'rm-labels' });
  const corner = h(doc, 'div', { class: 'rm-corner', 'aria-hidden': 'true' });
  corner.append(h(doc, 'span', {}, 'layer'));
  const layerList = h(doc, 'div', { class: 'rm-layer-list' });
  labels.append(corner, layerList);
  const scroller = h(doc, 'div', { class: 'rm-scroll' });
  const track = h(doc, 'div', { class: 'rm-track' });
  const header = h(doc, 'div', { class: 'rm-tokens', role: 'list', 'aria-label': 'Tokens' });
  const grid = h(doc, 'div', {
    class: 'rm-grid',
    'data-testid': 'routing-grid',
    tabindex: 0,
    role: 'grid',
    'aria-roledescription': 'routing map',
    'aria-label':
      options.ariaLabel ?? 'Routing map: tokens by layers. Arrow keys move between cells, Enter shows the gate distribution, Shift+Enter reveals the token.',
  });
  const colMark = h(doc, 'div', { class: 'rm-mark rm-col-highlight', hidden: true });
  const hoverMark = h(doc, 'div', { class: 'rm-mark rm-hover', hidden: true });
  const selMark = h(doc, 'div', { class: 'rm-mark rm-selected', hidden: true });
  const cursorMark = h(doc, 'div', { class: 'rm-mark rm-cursor', hidden: true });
  const tileLayer = h(doc, 'div', { class: 'rm-tiles' });
  grid.append(tileLayer, colMark, hoverMark, selMark, cursorMark);
  track.append(header, grid);
  scroller.append(track);
  const tooltip = h(doc, 'div', { class: 'rm-tooltip', role: 'tooltip', hidden: true });
  const live = h(doc, 'div', { class: 'visually-hidden', 'aria-live': 'polite' });
  root.append(labels, scroller, tooltip, live);
  container.append(root);

  const tokenEls: HTMLElement[] = [];
  let chunks: HTMLElement[] = [];
  let chunkTokens = -1;
  const tiles: { el: HTMLCanvasElement; painted: boolean }[] = [];
  let builtLayers = '';
  /** One pixel buffer reused by every tile of the same size. */
  let scratch: { img: ImageData; buf: Uint32Array } | null = null;

  // --- DOM: labels, token headers, tiles ------------------------------------------------------------

  function buildDom(): void {
    const r = current.routing;
    const labelsKey = `${r.numLayers}:${current.layerOfRow?.join(',') ?? ''}`;
    if (builtLayers !== labelsKey) {
      clear(layerList);
      for (let l = 0; l < r.numLayers; l++) {
        layerList.append(h(doc, 'div', { class: 'rm-layer-label', 'data-testid': 'layer-label', 'data-layer': l }, `L${layerOf(l)}`));
      }
      builtLayers = labelsKey;
    }
    // Token headers: reuse elements, add or remove the difference. They live in chunks of one tile's
    // width, so off-screen chunks skip style, layout and paint (content-visibility) and the 180° turn of
    // the vertical text is one transform per chunk rather than one per token.
    const T = r.numTokens;
    if (tokenEls.length > T) {
      for (const el of tokenEls.splice(T)) el.remove();
    }
    for (let t = tokenEls.length; t < T; t++) {
      tokenEls.push(h(doc, 'div', { class: 'rm-token', 'data-testid': 'token', 'data-index': t, role: 'listitem', tabindex: -1 }));
    }
    const nChunks = Math.ceil(T / tileTokens);
    if (chunks.length !== nChunks || chunkTokens !== T) {
      clear(header);
      chunks = [];
      for (let c = 0; c < nChunks; c++) {
        const chunk = h(doc, 'div', { class: 'rm-token-chunk' });
        const from = c * tileTokens;
        const to = Math.min(T, from + tileTokens);
        chunk.style.width = `${(to - from) * cellW}px`;
        for (let t = from; t < to; t++) chunk.appendChild(tokenEls[t]!);
        chunks.push(chunk);
        header.appendChild(chunk);
      }
      chunkTokens = T;
    }
    for (let t = 0; t < T; t++) {
      const raw = current.tokens[t] ?? '';
      const el = tokenEls[t]!;
      el.textContent = visibleToken(raw);
      el.title = `#${t} ${JSON.stringify(raw)}`;
      el.classList.toggle('is-highlighted', t === highlighted);
    }
    track.style.width = `${T * cellW}px`;
    grid.style.width = `${T * cellW}px`;
    grid.style.height = `${r.numLayers * cellH}px`;
    // Tiles
    const n = Math.ceil(T / tileTokens);
    for (const t of tiles.splice(n)) t.el.remove();
    while (tiles.length < n) {
      const el = h(doc, 'canvas', { class: 'rm-tile', 'data-tile': tiles.length, 'aria-hidden': 'true' }) as HTMLCanvasElement;
      el.width = 0;
      el.height = 0;
      el.style.left = `${tiles.length * tileW}px`;
      tileLayer.appendChild(el);
      tiles.push({ el, painted: false });
    }
    tiles.forEach((tile, i) => {
      const tokensIn = Math.min(tileTokens, T - i * tileTokens);
      tile.el.style.width = `${tokensIn * cellW}px`;
      tile.el.style.height = `${r.numLayers * cellH}px`;
      tile.painted = false;
    });
  }

  function paintTile(i: number): void {
    const tile = tiles[i];
    if (!tile || tile.painted) return;
    const r = current.routing;
    const first = i * tileTokens;
    const last = Math.min(r.numTokens - 1, first + tileTokens - 1);
    const W = Math.max(1, Math.round((last - first + 1) * cellW * dpr));
    const H = Math.max(1, Math.round(r.numLayers * cellH * dpr));
    if (tile.el.width !== W) tile.el.width = W;
    if (tile.el.height !== H) tile.el.height = H;
    const ctx = tile.el.getContext('2d');
    if (!ctx) return; // no canvas (unit tests under linkedom)
    if (!scratch || scratch.img.width !== W || scratch.img.height !== H) {
      const img = ctx.createImageData(W, H);
      scratch = { img, buf: new Uint32Array(img.data.buffer) };
    } else scratch.buf.fill(0);
    const { img, buf } = scratch;
    if (r.topK > 0) paintCells(buf, W, H, r, colors, first, last, -Math.round(first * cellW * dpr), 0, dpr, cellW, cellH, gap);
    ctx.putImageData(img, 0, 0);
    tile.painted = true;
  }

  function releaseTile(i: number): void {
    const tile = tiles[i];
    if (!tile || !tile.painted) return;
    tile.el.width = 0;
    tile.el.height = 0;
    tile.painted = false;
  }

  function viewport(): { left: number; width: number } {
    return { left: scroller.scrollLeft || 0, width: scroller.clientWidth || 1200 };
  }

  /** Paints the tiles in view now, the neighbours within one viewport next frame; frees far tiles. */
  function paintVisible(): void {
    frame = 0;
    const t0 = performance.now();
    const nowDpr = win?.devicePixelRatio || 1;
    if (nowDpr !== dpr) {
      // moved to a screen with another pixel ratio (or zoomed): repaint at the new resolution
      dpr = nowDpr;
      tiles.forEach((t) => (t.painted = false));
    }
    const { left, width } = viewport();
    const firstVisible = Math.floor(left / tileW);
    const lastVisible = Math.floor((left + width) / tileW);
    for (let i = firstVisible; i <= lastVisible; i++) paintTile(i);
    const ahead = Math.ceil(width / tileW);
    let pending = false;
    for (let i = firstVisible - ahead; i <= lastVisible + ahead; i++) if (tiles[i] && !tiles[i]!.painted) pending = true;
    const keepFrom = firstVisible - 3 * ahead - 1;
    const keepTo = lastVisible + 3 * ahead + 1;
    tiles.forEach((_t, i) => {
      if (i < keepFrom || i > keepTo) releaseTile(i);
    });
    drawMs = performance.now() - t0;
    if (pending)
      idle(() => {
        const v = viewport();
        const f = Math.floor(v.left / tileW);
        const l = Math.floor((v.left + v.width) / tileW);
        const a = Math.ceil(v.width / tileW);
        for (let i = f - a; i <= l + a; i++) if (i >= 0) paintTile(i);
      });
  }

  function idle(fn: () => void): void {
    const ric = (globalThis as { requestIdleCallback?: (cb: () => void, o?: { timeout: number }) => number }).requestIdleCallback;
    if (ric) ric(fn, { timeout: 200 });
    else setTimeout(fn, 16);
  }

  function schedule(): void {
    if (frame) return;
    if (typeof requestAnimationFrame !== 'function') return paintVisible();
    frame = requestAnimationFrame(paintVisible);
  }

  function placeMark(el: HTMLElement, c: Cell | null): void {
    if (!c) {
      el.hidden = true;
      return;
    }
    el.hidden = false;
    el.style.left = `${c.token * cellW}px`;
    el.style.top = `${c.layer * cellH}px`;
    el.style.width = `${cellW - gap}px`;
    el.style.height = `${cellH - gap}px`;
  }

  function placeMarks(): void {
    placeMark(hoverMark, hover);
    placeMark(selMark, selected);
    placeMark(cursorMark, cursor);
    if (highlighted === null) colMark.hidden = true;
    else {
      colMark.hidden = false;
      colMark.style.left = `${highlighted * cellW}px`;
      colMark.style.top = '0px';
      colMark.style.width = `${cellW - gap}px`;
      colMark.style.height = `${current.routing.numLayers * cellH - gap}px`;
    }
  }

  function render(): void {
    colors = Uint32Array.from(expertPalette(current.routing.numExperts), packColor);
    dpr = win?.devicePixelRatio || 1;
    buildDom();
    placeMarks();
    if (frame && typeof cancelAnimationFrame === 'function') cancelAnimationFrame(frame);
    frame = 0;
    schedule();
  }

  // --- interaction --------------------------------------------------------------------------------

  function cellAt(clientX: number, clientY: number): Cell | null {
    const r = current.routing;
    const rect = grid.getBoundingClientRect();
    const token = Math.floor((clientX - rect.left) / cellW);
    const layer = Math.floor((clientY - rect.top) / cellH);
    if (token < 0 || token >= r.numTokens || layer < 0 || layer >= r.numLayers) return null;
    return { layer, token };
  }

  function describe(c: Cell): { title: string; rows: { expert: number; weight: number }[]; mass: number; entropy: number | null } {
    const route = tokenRoute(current.routing, c.layer, c.token);
    const rows = route.experts.map((expert, j) => ({ expert, weight: route.weights[j]! }));
    const entropy = Number.isFinite(route.entropyNormalized) ? route.entropyNormalized : null;
    return { title: visibleToken(current.tokens[c.token] ?? ''), rows, mass: route.mass, entropy };
  }

  function fillTooltip(c: Cell): void {
    const d = describe(c);
    const palette = expertPalette(current.routing.numExperts);
    clear(tooltip);
    const head = h(doc, 'div', { class: 'rm-tt-head' });
    head.append(h(doc, 'span', { class: 'rm-tt-token' }, d.title), h(doc, 'span', { class: 'rm-tt-meta' }, ` token #${c.token} · layer ${layerOf(c.layer)}`));
    tooltip.append(head);
    const list = h(doc, 'div', { class: 'rm-tt-list' });
    for (const row of d.rows) {
      const sw = h(doc, 'span', { class: 'swatch' });
      sw.style.backgroundColor = palette[row.expert % palette.length]!;
      list.append(sw, h(doc, 'span', { class: 'rm-tt-expert' }, `expert ${row.expert}`), h(doc, 'span', { class: 'rm-tt-weight' }, row.weight.toFixed(3)));
    }
    tooltip.append(list);
    tooltip.append(
      h(
        doc,
        'div',
        { class: 'rm-tt-foot' },
        `top-${d.rows.length} weight sum ${d.mass.toFixed(3)}${d.entropy === null ? '' : ` · entropy ${d.entropy.toFixed(3)} of ln E`}`,
      ),
    );
  }

  function placeTooltip(clientX: number, clientY: number): void {
    tooltip.hidden = false;
    const vw = win?.innerWidth ?? 1000;
    const vh = win?.innerHeight ?? 800;
    const tw = tooltip.offsetWidth || 200;
    const th = tooltip.offsetHeight || 150;
    let x = clientX + 14;
    let y = clientY + 14;
    if (x + tw > vw - 4) x = Math.max(4, clientX - tw - 14);
    if (y + th > vh - 4) y = Math.max(4, clientY - th - 14);
    tooltip.style.left = `${x}px`;
    tooltip.style.top = `${y}px`;
  }

  function setHover(c: Cell | null): void {
    const prevToken = hover?.token ?? null;
    hover = c;
    placeMark(hoverMark, hover);
    const tok = c?.token ?? null;
    if (tok !== prevToken) options.onTokenHover?.(tok);
  }

  const onMove = (e: MouseEvent) => {
    const c = cellAt(e.clientX, e.clientY);
    if (!c) {
      tooltip.hidden = true;
      if (hover) setHover(null);
      return;
    }
    if (!hover || hover.layer !== c.layer || hover.token !== c.token) {
      fillTooltip(c);
      setHover(c);
    }
    placeTooltip(e.clientX, e.clientY);
  };
  const onLeave = () => {
    tooltip.hidden = true;
    if (hover) setHover(null);
  };
  const onClick = (e: MouseEvent) => {
    const c = cellAt(e.clientX, e.clientY);
    if (!c) return;
    cursor = c;
    placeMark(cursorMark, grid.matches?.(':focus-visible') ? cursor : null);
    options.onCellClick?.(c.layer, c.token);
  };

  function announce(c: Cell): void {
    const d = describe(c);
    live.textContent = `Token ${c.token} ${d.title}, layer ${layerOf(c.layer)}: ${d.rows.map((r) => `expert ${r.expert} ${r.weight.toFixed(3)}`).join(', ')}`;
  }

  function revealToken(t: number): void {
    const { left, width } = viewport();
    const x = t * cellW;
    if (x < left) scroller.scrollLeft = Math.max(0, x - cellW * 2);
    else if (x + cellW > left + width) scroller.scrollLeft = x + cellW * 3 - width;
  }

  function firstVisibleToken(): number {
    return Math.min(current.routing.numTokens - 1, Math.max(0, Math.floor((scroller.scrollLeft || 0) / cellW)));
  }

  const onKey = (e: KeyboardEvent) => {
    const r = current.routing;
    if (r.numTokens === 0) return;
    const c: Cell = cursor ? { ...cursor } : { layer: 0, token: firstVisibleToken() };
    const page = Math.max(1, Math.floor((scroller.clientWidth || 800) / cellW) - 1);
    switch (e.key) {
      case 'ArrowLeft':
        c.token = Math.max(0, c.token - 1);
        break;
      case 'ArrowRight':
        c.token = Math.min(r.numTokens - 1, c.token + 1);
        break;
      case 'ArrowUp':
        c.layer = Math.max(0, c.layer - 1);
        break;
      case 'ArrowDown':
        c.layer = Math.min(r.numLayers - 1, c.layer + 1);
        break;
      case 'Home':
        c.token = 0;
        break;
      case 'End':
        c.token = r.numTokens - 1;
        break;
      case 'PageUp':
        c.token = Math.max(0, c.token - page);
        break;
      case 'PageDown':
        c.token = Math.min(r.numTokens - 1, c.token + page);
        break;
      case 'Enter':
      case ' ':
        e.preventDefault();
        cursor = c;
        placeMark(cursorMark, cursor);
        if (e.shiftKey) options.onTokenActivate?.(c.token);
        else options.onCellClick?.(c.layer, c.token);
        return;
      case 'Escape':
        tooltip.hidden = true;
        return;
      default:
        return;
    }
    e.preventDefault();
    cursor = c;
    placeMark(cursorMark, cursor);
    revealToken(c.token);
    announce(c);
    options.onTokenHover?.(c.token);
  };

  const tokenIndex = (e: Event): number | null => {
    const el = (e.target as Element | null)?.closest?.('[data-index]');
    return el ? Number(el.getAttribute('data-index')) : null;
  };
  const onHeaderOver = (e: Event) => {
    const i = tokenIndex(e);
    if (i !== null) options.onTokenHover?.(i);
  };
  const onHeaderLeave = () => options.onTokenHover?.(null);
  const onHeaderClick = (e: Event) => {
    const i = tokenIndex(e);
    if (i !== null) options.onTokenActivate?.(i);
  };
  const onHeaderKey = (e: KeyboardEvent) => {
    const i = tokenIndex(e);
    if (i === null) return;
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      options.onTokenActivate?.(i);
    } else if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
      e.preventDefault();
      tokenEls[i + (e.key === 'ArrowRight' ? 1 : -1)]?.focus();
    }
  };
  const onScroll = () => {
    tooltip.hidden = true;
    schedule();
  };
  const onFocus = () => {
    if (!cursor) cursor = selected ? { ...selected } : { layer: 0, token: firstVisibleToken() };
    placeMark(cursorMark, cursor);
  };
  const onBlur = () => placeMark(cursorMark, null);

  grid.addEventListener('mousemove', onMove);
  grid.addEventListener('mouseleave', onLeave);
  grid.addEventListener('click', onClick);
  grid.addEventListener('keydown', onKey);
  grid.addEventListener('focus', onFocus);
  grid.addEventListener('blur', onBlur);
  header.addEventListener('mouseover', onHeaderOver);
  header.addEventListener('mouseleave', onHeaderLeave);
  header.addEventListener('click', onHeaderClick);
  header.addEventListener('keydown', onHeaderKey);
  scroller.addEventListener('scroll', onScroll, { passive: true });

  const RO = (globalThis as { ResizeObserver?: typeof ResizeObserver }).ResizeObserver;
  const ro = RO ? new RO(() => schedule()) : null;
  ro?.observe(scroller);

  render();

  // --- public API ----------------------------------------------------------------------------------

  const update = ((next: RoutingMapData) => {
    current = next;
    if (selected && (selected.token >= next.routing.numTokens || selected.layer >= next.routing.numLayers)) selected = null;
    cursor = null;
    hover = null;
    if (highlighted !== null && highlighted >= next.routing.numTokens) highlighted = null;
    render();
  }) as RoutingMapUpdate;

  update.highlightToken = (index, reveal = false) => {
    const next = index !== null && index >= 0 && index < current.routing.numTokens ? index : null;
    if (next === highlighted) return;
    if (highlighted !== null) tokenEls[highlighted]?.classList.remove('is-highlighted');
    highlighted = next;
    if (highlighted !== null) {
      tokenEls[highlighted]?.classList.add('is-highlighted');
      if (reveal) revealToken(highlighted);
    }
    placeMarks();
  };
  update.select = (cell) => {
    selected = cell ? { ...cell } : null;
    if (cell) cursor = { ...cell };
    placeMarks();
    if (!(doc.activeElement === grid)) placeMark(cursorMark, null);
  };
  update.redraw = () => {
    dpr = win?.devicePixelRatio || 1;
    tiles.forEach((t) => (t.painted = false));
    if (frame && typeof cancelAnimationFrame === 'function') cancelAnimationFrame(frame);
    paintVisible();
  };
  update.scrollLeft = (value?: number) => {
    if (value !== undefined) {
      scroller.scrollLeft = value;
      schedule();
    }
    return scroller.scrollLeft || 0;
  };
  update.lastDrawMs = () => drawMs;
  update.renderFull = (scale = 1) => {
    const r = current.routing;
    const out = doc.createElement('canvas');
    let s = scale;
    const cssW = labelW + r.numTokens * cellW;
    const cssH = headerH + r.numLayers * cellH + 4;
    if (cssW * s > MAX_CANVAS_PX) s = MAX_CANVAS_PX / cssW;
    out.width = Math.round(cssW * s);
    out.height = Math.round(cssH * s);
    const ctx = out.getContext('2d');
    if (!ctx) return null;
    const fg = cssVar(container, '--vscode-editor-foreground', cssVar(container, '--vscode-foreground', '#cccccc'));
    const bg = cssVar(container, '--vscode-editor-background', '#1e1e1e');
    const muted = cssVar(container, '--vscode-descriptionForeground', '#999999');
    const uiFont = cssVar(container, '--vscode-font-family', 'sans-serif');
    const monoFont = cssVar(container, '--vscode-editor-font-family', 'monospace');
    // cells first (putImageData replaces pixels), then background around them, then text
    const gx = Math.round(labelW * s);
    const gy = Math.round(headerH * s);
    const gw = out.width - gx;
    const gh = Math.round(r.numLayers * cellH * s);
    ctx.fillStyle = bg;
    ctx.fillRect(0, 0, out.width, out.height);
    if (gw > 0 && gh > 0 && r.topK > 0) {
      const img = ctx.createImageData(gw, gh);
      const buf = new Uint32Array(img.data.buffer);
      const bgPacked = /^#[0-9a-f]{6}$/i.test(bg) ? packColor(bg) : 0;
      if (bgPacked) buf.fill(bgPacked);
      paintCells(buf, gw, gh, r, colors, 0, r.numTokens - 1, 0, 0, s, cellW, cellH, gap);
      ctx.putImageData(img, gx, gy);
    }
    ctx.fillStyle = muted;
    ctx.font = `${10 * s}px ${uiFont}`;
    ctx.textBaseline = 'middle';
    ctx.textAlign = 'right';
    for (let l = 0; l < r.numLayers; l++) ctx.fillText(`L${layerOf(l)}`, (labelW - 6) * s, (headerH + l * cellH + cellH / 2) * s);
    ctx.fillStyle = fg;
    ctx.font = `${11 * s}px ${monoFont}`;
    ctx.textAlign = 'left';
    for (let t = 0; t < r.numTokens; t++) {
      ctx.save();
      ctx.translate((labelW + t * cellW + cellW / 2) * s, (headerH - 4) * s);
      ctx.rotate(-Math.PI / 2);
      const label = visibleToken(current.tokens[t] ?? '');
      ctx.fillText(label.length > 10 ? `${label.slice(0, 9)}…` : label, 0, 0);
      ctx.restore();
    }
    return out;
  };
  update.destroy = () => {
    ro?.disconnect();
    if (frame && typeof cancelAnimationFrame === 'function') cancelAnimationFrame(frame);
    grid.removeEventListener('mousemove', onMove);
    grid.removeEventListener('mouseleave', onLeave);
    grid.removeEventListener('click', onClick);
    grid.removeEventListener('keydown', onKey);
    grid.removeEventListener('focus', onFocus);
    grid.removeEventListener('blur', onBlur);
    header.removeEventListener('mouseover', onHeaderOver);
    header.removeEventListener('mouseleave', onHeaderLeave);
    header.removeEventListener('click', onHeaderClick);
    header.removeEventListener('keydown', onHeaderKey);
    scroller.removeEventListener('scroll', onScroll);
  };
  return update;
}
