/**
 * Screenshots of the expert-structure view and of the trace panel's "Expert outputs (all experts)" section,
 * with synthetic data, in the Dark Modern and Light Modern themes, under the real HTML shell and CSP.
 *
 *   node esbuild.mjs && node dist/bench/webview/structureShots.js
 *
 * Writes bench/results/screenshots/structure-{dark,light}.png, trace-experts-{dark,light}.png and
 * trace-experts-absent-{dark,light}.png (the section before the analysis has run), and prints any CSP
 * violations or page errors (there should be none). Needs dist/webview/{structure,trace}/main.js and
 * Chromium (/usr/bin/chromium or CHROMIUM_PATH). With SHOT_CROPS=<dir>, also writes device-scale crops of
 * the single charts there, for a close look.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import type { TracePayload } from '../../src/shared/protocol';
import { syntheticTrace } from '../../test/support/synthetic';
import { syntheticTraceWithExperts, syntheticWeightAnalysis } from '../../test/support/syntheticStructure';
import { ROOT, newPage, startWebviewSite, type BenchWindow, type EncodedPayload } from './site';

const CROPS = process.env.SHOT_CROPS;

async function crop(pg: Page, selector: string, name: string): Promise<void> {
  if (!CROPS) return;
  mkdirSync(CROPS, { recursive: true });
  await pg
    .locator(selector)
    .first()
    .screenshot({ path: join(CROPS, `${name}.png`), scale: 'device' });
}

/** Typed arrays travel as base64 and are rebuilt in the page (as VS Code's postMessage delivers them). */
async function postTrace(pg: Page, p: TracePayload): Promise<void> {
  const b64 = (a: Float32Array | Uint16Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
  const r = p.result.routing;
  const eo = p.result.expertOutputs;
  const enc = {
    ...p,
    result: {
      ...p.result,
      routing: { ...r, probs: r.probs ? b64(r.probs) : undefined, topExperts: b64(r.topExperts), topWeights: b64(r.topWeights), entropy: b64(r.entropy) },
      expertOutputs: eo ? { ...eo, norms: b64(eo.norms), meanAngularSimilarity: b64(eo.meanAngularSimilarity) } : undefined,
    },
  };
  await pg.evaluate((e: EncodedPayload) => {
    const dec = (s: string | Uint16Array | Float32Array, T: Uint16ArrayConstructor | Float32ArrayConstructor) => {
      const bin = atob(s as string);
      const u8 = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
      return new T(u8.buffer);
    };
    const rr = e.result.routing;
    rr.topExperts = dec(rr.topExperts, Uint16Array);
    rr.topWeights = dec(rr.topWeights, Float32Array);
    rr.entropy = dec(rr.entropy, Float32Array);
    if (rr.probs) rr.probs = dec(rr.probs, Float32Array);
    const x = e.result.expertOutputs;
    if (x) {
      x.norms = dec(x.norms, Float32Array);
      x.meanAngularSimilarity = dec(x.meanAngularSimilarity, Float32Array);
    }
    window.dispatchEvent(new MessageEvent('message', { data: { type: 'trace', payload: e } }));
  }, enc);
}

/** Clicks every visible export button and checks what was posted (PNG: real PNG bytes; others: non-empty). */
async function exportSmoke(pg: Page, label: string): Promise<number> {
  await pg.evaluate(() => {
    (window as unknown as BenchWindow).__posted.length = 0;
    for (const b of document.querySelectorAll('[data-export]')) if (!(b as HTMLElement).closest('[hidden]')) (b as HTMLElement).click();
  });
  await pg.waitForTimeout(2500);
  const buttons = (await pg.evaluate(
    () => Array.from(document.querySelectorAll('[data-export]')).filter((b) => !(b as HTMLElement).closest('[hidden]')).length,
  )) as number;
  const posted = (await pg.evaluate(() =>
    (window as unknown as BenchWindow).__posted
      .filter((m: { type: string }) => m.type === 'export')
      .map((m: { format: string; name: string; data: string }) => ({
        format: m.format,
        name: m.name,
        chars: m.data.length,
        ok: m.format === 'png' ? /^iVBORw0KGgo/.test(m.data) : m.data.length > 0,
      })),
  )) as { format: string; name: string; chars: number; ok: boolean }[];
  const bad = posted.filter((m) => !m.ok);
  console.log(`${label}: ${posted.length} of ${buttons} exports posted, ${bad.length} bad: ${posted.map((m) => `${m.name} (${m.chars})`).join(', ')}`);
  return bad.length + (buttons - posted.length);
}

async function problems(pg: Page, label: string): Promise<number> {
  const errs = (pg as unknown as { __errors: string[] }).__errors;
  const csp = (await pg.evaluate(() => (window as unknown as BenchWindow).__csp)) as unknown[];
  const pageErrs = (await pg.evaluate(() => (window as unknown as BenchWindow).__errors)) as unknown[];
  if (errs.length || csp.length || pageErrs.length) console.log(`${label}: problems`, { errs, csp, pageErrs });
  return errs.length + csp.length + pageErrs.length;
}

async function main(): Promise<void> {
  const site = await startWebviewSite(['structure', 'trace'], 2);
  const { ctx, origin } = site;
  const shotsDir = join(ROOT, 'bench/results/screenshots');
  mkdirSync(shotsDir, { recursive: true });
  const shots: string[] = [];
  let issues = 0;
  try {
    const analysis = syntheticWeightAnalysis();
    const withExperts = syntheticTraceWithExperts({ requestId: 1, numTokens: 120 });
    const plain = syntheticTrace({ requestId: 1, numTokens: 120, includeProbs: true });
    for (const theme of ['dark', 'light'] as const) {
      // structure view: layer 4, hover on a pair
      const sp = await newPage(ctx, origin, 'structure', theme, { width: 1280, height: 900 });
      await sp.evaluate(() => window.dispatchEvent(new MessageEvent('message', { data: { type: 'structure-progress', message: 'Analysing…' } })));
      const renderMs = await sp.evaluate(
        (data) => {
          const t0 = performance.now();
          window.dispatchEvent(new MessageEvent('message', { data }));
          return performance.now() - t0;
        },
        { type: 'structure', analysis, modelLabel: 'olmoe · OLMoE-1B-7B-0924 (synthetic data)' },
      );
      const switchMs = await sp.evaluate(() => {
        const sel = document.querySelector('[data-testid="structure-layer"]') as unknown as { value: string; dispatchEvent(e: Event): boolean };
        const t0 = performance.now();
        sel.value = '9';
        sel.dispatchEvent(new Event('change'));
        return performance.now() - t0;
      });
      console.log(`structure-${theme}: 16 layers x 64 experts: first render ${renderMs.toFixed(0)} ms, layer switch ${switchMs.toFixed(0)} ms (synchronous)`);
      await sp.waitForTimeout(300); // the scrollbar appears: one re-render at the new width
      await sp.locator('[data-testid="similarity-by-depth"] rect.layer-hit[data-layer="4"]').click({ force: true });
      // the whole page in the viewport, so the full-page capture does not resize it (and end the hover)
      await sp.setViewportSize({ width: 1280, height: await sp.evaluate(() => document.documentElement.scrollHeight) });
      await sp.waitForTimeout(200);
      await sp.locator('[data-testid="similarity-heatmap"] rect.cell[data-a="9"][data-b="22"]').hover({ force: true });
      await sp.waitForTimeout(150);
      const readout = await sp.locator('[data-testid="similarity-hover"]').textContent();
      if (!/expert 9 × expert 22/.test(readout ?? '')) {
        console.log(`structure-${theme}: hover readout not shown: ${readout}`);
        issues++;
      }
      await crop(sp, '[data-testid="structure-matrix-section"]', `structure-matrix-${theme}`);
      await crop(sp, '[data-testid="structure-depth-section"]', `structure-depth-${theme}`);
      await crop(sp, '[data-testid="structure-router-section"]', `structure-router-${theme}`);
      const sf = join(shotsDir, `structure-${theme}.png`);
      await sp.screenshot({ path: sf, fullPage: true, scale: 'css' });
      shots.push(sf);
      if (theme === 'dark') issues += await exportSmoke(sp, 'structure exports');
      issues += await problems(sp, `structure-${theme}`);
      await sp.close();

      // trace panel: the expert-outputs section with data
      const tp = await newPage(ctx, origin, 'trace', theme, { width: 1280, height: 900 });
      await postTrace(tp, withExperts);
      await tp.locator('[data-testid="norm-share-by-layer"] rect.layer-hit[data-layer="6"]').click({ force: true });
      const sec = tp.locator('[data-testid="expert-outputs-section"]');
      await sec.scrollIntoViewIfNeeded();
      await tp.waitForTimeout(150);
      await crop(tp, '[data-testid="norm-vs-score"]', `trace-norm-${theme}`);
      await crop(tp, '[data-testid="diversity-section"]', `trace-diversity-${theme}`);
      const tf = join(shotsDir, `trace-experts-${theme}.png`);
      await sec.screenshot({ path: tf, scale: 'css' });
      shots.push(tf);
      if (theme === 'dark') {
        // only the new section's buttons: hide the others' toolbars for the count
        await tp.evaluate(() => {
          for (const s of document.querySelectorAll('section.section:not([data-testid="expert-outputs-section"]) .export-bar'))
            (s as HTMLElement).hidden = true;
        });
        issues += await exportSmoke(tp, 'trace expert-output exports');
      }
      issues += await problems(tp, `trace-experts-${theme}`);
      await tp.close();

      // trace panel: the section before the analysis ran
      const ap = await newPage(ctx, origin, 'trace', theme, { width: 1280, height: 900 });
      await postTrace(ap, plain);
      const asec = ap.locator('[data-testid="expert-outputs-section"]');
      await asec.scrollIntoViewIfNeeded();
      await ap.waitForTimeout(100);
      const af = join(shotsDir, `trace-experts-absent-${theme}.png`);
      await asec.screenshot({ path: af, scale: 'css' });
      shots.push(af);
      await ap.locator('[data-testid="analyze-experts"]').click();
      const posted = (await ap.evaluate(
        () => (window as unknown as BenchWindow).__posted.filter((m: { type: string }) => m.type === 'analyze-experts').length,
      )) as number;
      if (posted !== 1) {
        console.log(`trace-experts-absent-${theme}: the button posted ${posted} analyze-experts messages`);
        issues++;
      }
      issues += await problems(ap, `trace-experts-absent-${theme}`);
      await ap.close();
    }
    console.log(`screenshots:\n  ${shots.join('\n  ')}\nproblems: ${issues}`);
    if (issues) process.exitCode = 1;
  } finally {
    await site.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
