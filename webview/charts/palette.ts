/**
 * A stable categorical palette for expert ids.
 *
 * - Deterministic: the colour depends only on (id, numExperts), so expert 17 has the same colour in every
 *   chart, view and export, in every session.
 * - Distinguishable: colours are picked by farthest-point sampling in CIELAB from a fixed grid of
 *   candidates, so every new colour is as far as possible from all earlier ones (the first 8, 16, 32 ids
 *   are spread as widely as the gamut allows, and all 64 stay clearly apart).
 * - Works on light and dark backgrounds: candidates keep CIELAB lightness in a middle band (L* 45..72),
 *   never near white or black; in high-contrast themes the charts add outlines rather than rely on colour.
 * For up to 10 experts (Mixtral has 8) the Tableau 10 colours are used as they are.
 */
import { hcl, lab, schemeTableau10 } from 'd3';

const cache = new Map<number, string[]>();

interface Candidate {
  hex: string;
  l: number;
  a: number;
  b: number;
}

let candidates: Candidate[] | undefined;

function candidateGrid(): Candidate[] {
  if (candidates) return candidates;
  const out: Candidate[] = [];
  const seen = new Set<string>();
  for (const l of [45, 54, 63, 72]) {
    for (const c of [30, 45, 60]) {
      for (let h = 0; h < 360; h += 5) {
        const col = hcl(h, c, l);
        if (!col.displayable()) continue;
        const hex = col.formatHex();
        if (seen.has(hex)) continue;
        seen.add(hex);
        const q = lab(hex);
        out.push({ hex, l: q.l, a: q.a, b: q.b });
      }
    }
  }
  candidates = out;
  return out;
}

function farthestPoint(n: number): string[] {
  const cands = candidateGrid();
  const minDist = new Float64Array(cands.length).fill(Infinity);
  const picked: string[] = [];
  // Fixed start: the candidate nearest a mid-lightness blue, so the sequence is the same everywhere.
  const start = lab(hcl(250, 45, 54).formatHex());
  let next = 0;
  let nearest = Infinity;
  cands.forEach((c, i) => {
    const d = Math.hypot(c.l - start.l, c.a - start.a, c.b - start.b);
    if (d < nearest) {
      nearest = d;
      next = i;
    }
  });
  for (let k = 0; k < n && k < cands.length; k++) {
    const p = cands[next]!;
    picked.push(p.hex);
    let bestI = 0;
    let bestD = -1;
    for (let i = 0; i < cands.length; i++) {
      const c = cands[i]!;
      const d = Math.hypot(c.l - p.l, c.a - p.a, c.b - p.b);
      if (d < minDist[i]!) minDist[i] = d;
      if (minDist[i]! > bestD) {
        bestD = minDist[i]!;
        bestI = i;
      }
    }
    next = bestI;
  }
  // More experts than candidates (never for real models): repeat.
  for (let k = picked.length; k < n; k++) picked.push(picked[k % cands.length]!);
  return picked;
}

export function expertPalette(numExperts: number): readonly string[] {
  const n = Math.max(1, Math.floor(numExperts));
  let p = cache.get(n);
  if (p) return p;
  p = n <= schemeTableau10.length ? schemeTableau10.slice(0, n) : farthestPoint(n);
  cache.set(n, p);
  return p;
}

/** The colour of expert `id` (0-based) among `numExperts`, as #rrggbb. */
export function expertColor(id: number, numExperts: number): string {
  const p = expertPalette(numExperts);
  const i = ((Math.floor(id) % p.length) + p.length) % p.length;
  return p[i]!;
}
