/**
 * Browser render benchmark of the trace webview (and screenshots of all three views).
 *
 *   node esbuild.mjs && node dist/bench/webview/render.js [--reps 10] [--tokens 600] [--no-screenshots]
 *
 * Serves a temp folder over http://127.0.0.1 (the real HTML shell from src/host/webviewHtml.ts with its
 * Content-Security-Policy, the bundled dist/webview/<view>/main.js, vscode-elements and codicons), opens
 * it in Chromium through playwright-core, posts a synthetic 600-token x 16-layer x top-8 x 64-expert
 * TracePayload as a window message, and measures the time from message arrival until the frame with the
 * drawn trace has been produced (requestAnimationFrame, then a task after it). Then scrolls the routing
 * map programmatically and records frame intervals and canvas draw times. CSP violations and page errors
 * are recorded too. Writes bench/results/webview-render.json (+ screenshots in bench/results/screenshots).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import type { TracePayload } from '../../src/shared/protocol';
import { heatmapFromSummary, heatmapFromTrace } from '../../src/analysis/heatmap';
import { syntheticSummary, syntheticTrace } from '../../test/support/synthetic';
import { ROOT, newPage, startWebviewSite, type BenchWindow, type EncodedPayload } from './site';

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(name);
const opt = (name: string, dflt: number) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? Number(args[i + 1]) : dflt;
};
const REPS = opt('--reps', 10);
const WARMUP = 2;
const TOKENS = opt('--tokens', 600);
const DPR = opt('--dpr', 2);
const SCROLL_FRAMES = opt('--scroll-frames', 180);
const BUDGET_MS = 200;

/** Typed arrays travel to the page as base64 and are rebuilt there (as VS Code's postMessage delivers them). */
function encodePayload(p: TracePayload): EncodedPayload {
  const r = p.result.routing;
  const b64 = (a: Float32Array | Uint16Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
  return {
    ...p,
    result: {
      ...p.result,
      routing: { ...r, probs: r.probs ? b64(r.probs) : undefined, topExperts: b64(r.topExperts), topWeights: b64(r.topWeights), entropy: b64(r.entropy) },
    },
  };
}

async function loadPayload(pg: Page, p: TracePayload): Promise<void> {
  await pg.evaluate((enc: EncodedPayload) => {
    const dec = (s: string | Uint16Array | Float32Array, T: Uint16ArrayConstructor | Float32ArrayConstructor) => {
      const bin = atob(s as string);
      const u8 = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
      return new T(u8.buffer);
    };
    const r = enc.result.routing;
    r.topExperts = dec(r.topExperts, Uint16Array);
    r.topWeights = dec(r.topWeights, Float32Array);
    r.entropy = dec(r.entropy, Float32Array);
    if (r.probs) r.probs = dec(r.probs, Float32Array);
    (window as unknown as BenchWindow).__payload = enc;
  }, encodePayload(p));
}

function stats(xs: number[]) {
  const s = xs.slice().sort((a, b) => a - b);
  const q = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]! : NaN);
  const r = (x: number) => Math.round(x * 100) / 100;
  return {
    n: s.length,
    medianMs: r(q(0.5)),
    p95Ms: r(q(0.95)),
    minMs: r(s[0] ?? NaN),
    maxMs: r(s[s.length - 1] ?? NaN),
    meanMs: r(s.reduce((a, b) => a + b, 0) / (s.length || 1)),
  };
}

async function measureRender(pg: Page, reps: number) {
  return pg.evaluate(async (n: number) => {
    const w = window as unknown as BenchWindow;
    const view = w.__moeTraceView;
    const out: { frame: number; sync: number; canvas: number; tokens: number }[] = [];
    for (let i = 0; i < n; i++) {
      await new Promise((r) => setTimeout(r, 60));
      w.__nextRequestId = (w.__nextRequestId ?? 1000) + 1; // strictly increasing: older ids are (rightly) ignored as stale
      const payload = { ...w.__payload, requestId: w.__nextRequestId };
      const t0 = performance.now();
      window.dispatchEvent(new MessageEvent('message', { data: { type: 'trace', payload } }));
      const tSync = performance.now();
      // The frame that shows the trace: rAF runs before style/layout/paint, the message task after it.
      await new Promise<void>((resolve) =>
        requestAnimationFrame(() => {
          const ch = new MessageChannel();
          ch.port1.onmessage = () => resolve();
          ch.port2.postMessage(0);
        }),
      );
      const t1 = performance.now();
      const shown =
        document.querySelector('[data-testid="trace-view"]')?.getAttribute('data-state') === 'ready' &&
        document.body.textContent!.includes(`request ${payload.requestId}`);
      if (!shown) throw new Error(`trace ${payload.requestId} was not rendered`);
      out.push({
        frame: t1 - t0,
        sync: tSync - t0,
        canvas: view?.map()?.lastDrawMs() ?? NaN,
        tokens: document.querySelectorAll('[data-testid="token"]').length,
      });
    }
    return out;
  }, reps);
}

async function measureScroll(pg: Page, frames: number) {
  return pg.evaluate(async (n: number) => {
    const w = window as unknown as BenchWindow;
    const view = w.__moeTraceView;
    const sc = document.querySelector('.rm-scroll') as HTMLElement;
    sc.scrollLeft = 0;
    const intervals: number[] = [];
    const draws: number[] = [];
    let longTasks = 0;
    let po: PerformanceObserver | null;
    try {
      po = new PerformanceObserver((l) => (longTasks += l.getEntries().length));
      po.observe({ type: 'longtask', buffered: false } as PerformanceObserverInit);
    } catch {
      po = null;
    }
    await new Promise((r) => setTimeout(r, 100));
    let last = -1;
    let wraps = 0;
    await new Promise<void>((resolve) => {
      let i = 0;
      const step = (ts: number) => {
        if (last >= 0) {
          intervals.push(ts - last);
          draws.push(view?.map()?.lastDrawMs() ?? NaN);
        }
        last = ts;
        if (++i > n) return resolve();
        const max = sc.scrollWidth - sc.clientWidth;
        let next = sc.scrollLeft + 48;
        if (next >= max) {
          next = 0;
          wraps++;
        }
        sc.scrollLeft = next;
        requestAnimationFrame(step);
      };
      requestAnimationFrame(step);
    });
    po?.disconnect();
    return { intervals, draws, longTasks, wraps, scrollWidth: sc.scrollWidth, clientWidth: sc.clientWidth };
  }, frames);
}

async function main(): Promise<void> {
  const site = await startWebviewSite(['trace', 'heatmap', 'summary'], DPR);
  const { ctx, origin } = site;
  const resultsDir = join(ROOT, 'bench/results');
  const shotsDir = join(resultsDir, 'screenshots');
  mkdirSync(resultsDir, { recursive: true });
  try {
    const payload = syntheticTrace({ requestId: 1, numTokens: TOKENS, numLayers: 16, numExperts: 64, topK: 8, includeProbs: true });
    const pg = await newPage(ctx, origin, 'trace', 'dark', { width: 1280, height: 900 });
    await loadPayload(pg, payload);
    await measureRender(pg, WARMUP);
    // Where the time goes (CDP Performance domain: cumulative main-thread durations in seconds).
    const cdp = await ctx.newCDPSession(pg);
    await cdp.send('Performance.enable');
    const metrics = async () =>
      Object.fromEntries(((await cdp.send('Performance.getMetrics')) as { metrics: { name: string; value: number }[] }).metrics.map((m) => [m.name, m.value]));
    const before = await metrics();
    const measured = await measureRender(pg, REPS);
    const after = await metrics();
    const perRender = (k: string) => Math.round((((after[k] ?? 0) - (before[k] ?? 0)) * 1000 * 100) / REPS) / 100;
    const breakdown = {
      scriptMs: perRender('ScriptDuration'),
      recalcStyleMs: perRender('RecalcStyleDuration'),
      layoutMs: perRender('LayoutDuration'),
      taskMs: perRender('TaskDuration'),
      layoutCount: Math.round((((after.LayoutCount ?? 0) - (before.LayoutCount ?? 0)) / REPS) * 10) / 10,
      recalcStyleCount: Math.round((((after.RecalcStyleCount ?? 0) - (before.RecalcStyleCount ?? 0)) / REPS) * 10) / 10,
    };
    if (flag('--trace-scroll')) {
      // Diagnostic: which renderer events take the time while scrolling (devtools timeline categories).
      const events: { name: string; dur?: number; ph: string; tid: number; pid: number }[] = [];
      cdp.on('Tracing.dataCollected', (e) => {
        events.push(...(e.value as unknown as typeof events));
      });
      await cdp.send('Tracing.start', { categories: 'devtools.timeline,disabled-by-default-devtools.timeline', transferMode: 'ReportEvents' });
      await measureScroll(pg, 60);
      const done = new Promise((ok) => cdp.once('Tracing.tracingComplete', ok));
      await cdp.send('Tracing.end');
      await done;
      const byName = new Map<string, number>();
      for (const e of events) if (e.ph === 'X' && e.dur) byName.set(e.name, (byName.get(e.name) ?? 0) + e.dur / 1000);
      const traceSummary = [...byName.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 15)
        .map(([n, ms]) => `${n}: ${(ms / 60).toFixed(2)} ms/frame`);
      console.log(traceSummary);
    }
    const beforeScroll = await metrics();
    const scroll = await measureScroll(pg, SCROLL_FRAMES);
    const afterScroll = await metrics();
    const perFrame = (k: string) => Math.round((((afterScroll[k] ?? 0) - (beforeScroll[k] ?? 0)) * 1000 * 100) / SCROLL_FRAMES) / 100;
    const scrollMainThread = {
      taskMs: perFrame('TaskDuration'),
      scriptMs: perFrame('ScriptDuration'),
      layoutMs: perFrame('LayoutDuration'),
      recalcStyleMs: perFrame('RecalcStyleDuration'),
    };
    // Export smoke check under the real CSP: click every export button of the trace view.
    await pg.locator('[data-testid="routing-grid"]').focus();
    await pg.keyboard.press('Enter'); // open a gate distribution so its export bar is live
    await pg.evaluate(() => {
      (window as unknown as BenchWindow).__posted.length = 0;
      for (const b of document.querySelectorAll('[data-export]')) if (!(b as HTMLElement).closest('[hidden]')) (b as HTMLElement).click();
    });
    await pg.waitForTimeout(1500);
    const rawExports = (await pg.evaluate(() => (window as unknown as BenchWindow).__posted.filter((m: { type: string }) => m.type === 'export'))) as {
      format: string;
      name: string;
      data: string;
    }[];
    const saveDir = args.includes('--save-exports') ? args[args.indexOf('--save-exports') + 1] : undefined;
    if (saveDir) {
      mkdirSync(saveDir, { recursive: true });
      for (const m of rawExports) writeFileSync(join(saveDir, m.name), m.format === 'png' ? Buffer.from(m.data, 'base64') : m.data);
    }
    const exportsPosted = rawExports.map((m) => ({
      format: m.format,
      name: m.name,
      chars: m.data.length,
      ok: m.format === 'png' ? /^iVBORw0KGgo/.test(m.data) : m.data.length > 0,
    }));
    const browserVersion = ctx.browser()?.version() ?? (await pg.evaluate(() => navigator.userAgent));
    const csp = (await pg.evaluate(() => (window as unknown as BenchWindow).__csp)) as unknown[];
    const pageErrors = (pg as unknown as { __errors: string[] }).__errors;
    const render = stats(measured.map((s) => s.frame));
    const result = {
      generatedAt: new Date().toISOString(),
      browser: browserVersion,
      viewport: { width: 1280, height: 900, deviceScaleFactor: DPR },
      trace: { tokens: payload.result.tokens.length, layers: 16, experts: 64, topK: 8, includesProbs: true },
      budgetMs: BUDGET_MS,
      withinBudget: render.p95Ms < BUDGET_MS,
      render: {
        what: 'message event dispatched -> next frame produced (requestAnimationFrame + task), full trace view re-render',
        warmup: WARMUP,
        ...render,
        synchronousRender: stats(measured.map((s) => s.sync)),
        mainThreadPerRender: breakdown,
        canvasDraw: stats(measured.map((s) => s.canvas)),
        tokenElements: measured[0]?.tokens,
      },
      scroll: {
        what: `routing map scrolled programmatically by 48 px per animation frame for ${SCROLL_FRAMES} frames`,
        frameInterval: stats(scroll.intervals),
        framesOver25ms: scroll.intervals.filter((x) => x > 25).length,
        canvasDrawPerFrame: stats(scroll.draws.filter((x) => Number.isFinite(x))),
        mainThreadPerFrame: scrollMainThread,
        longTasks: scroll.longTasks,
        scrollWidthPx: scroll.scrollWidth,
        viewportWidthPx: scroll.clientWidth,
      },
      exports: exportsPosted,
      cspViolations: csp,
      pageErrors,
    };
    writeFileSync(join(resultsDir, 'webview-render.json'), `${JSON.stringify(result, null, 2)}\n`);
    console.log(
      JSON.stringify(
        {
          render: { medianMs: render.medianMs, p95Ms: render.p95Ms, sync: result.render.synchronousRender.medianMs, canvas: result.render.canvasDraw.medianMs },
          breakdown,
          scroll: result.scroll.frameInterval,
          scrollMainThread,
          canvasDrawPerFrame: result.scroll.canvasDrawPerFrame,
          exports: exportsPosted.map((e) => `${e.name} ${e.ok ? 'ok' : 'BAD'} (${e.chars} chars)`),
          cspViolations: csp.length,
          pageErrors: pageErrors.length,
        },
        null,
        2,
      ),
    );
    await pg.close();

    if (!flag('--no-screenshots')) {
      mkdirSync(shotsDir, { recursive: true });
      const shots: string[] = [];
      const summary = syntheticSummary();
      const shotPayload = syntheticTrace({ requestId: 1, numTokens: TOKENS, includeProbs: true });
      for (const theme of ['dark', 'light'] as const) {
        const tp = await newPage(ctx, origin, 'trace', theme, { width: 1280, height: 900 });
        await loadPayload(tp, shotPayload);
        await tp.evaluate(() =>
          window.dispatchEvent(new MessageEvent('message', { data: { type: 'trace', payload: (window as unknown as BenchWindow).__payload } })),
        );
        const box = await tp.locator('[data-testid="routing-grid"]').boundingBox();
        if (box) {
          await tp.mouse.click(box.x + 30 * 16 + 8, box.y + 5 * 18 + 9);
          await tp.mouse.move(box.x + 12 * 16 + 8, box.y + 9 * 18 + 9);
        }
        await tp.evaluate(() => window.dispatchEvent(new MessageEvent('message', { data: { type: 'highlight-token', index: 40 } })));
        await tp.waitForTimeout(150);
        const f = join(shotsDir, `trace-${theme}.png`);
        await tp.screenshot({ path: f, fullPage: true, scale: 'css' });
        shots.push(f);
        await tp.close();

        const hp = await newPage(ctx, origin, 'heatmap', theme, { width: 380, height: 900 });
        await hp.evaluate(
          (data) => {
            window.dispatchEvent(new MessageEvent('message', { data }));
          },
          {
            type: 'heatmap',
            trace: heatmapFromTrace(shotPayload.result.routing, 'Trace: high school physics, question 12'),
            run: heatmapFromSummary(summary, 'Run: olmoe-1b-7b, MMLU test, 5-shot'),
          },
        );
        await hp.evaluate(() => {
          window.dispatchEvent(new MessageEvent('message', { data: { type: 'select-source', source: 'run' } }));
        });
        await hp.locator('rect.cell[data-layer="4"][data-expert="10"]').click({ force: true });
        const hf = join(shotsDir, `heatmap-${theme}.png`);
        await hp.screenshot({ path: hf, fullPage: true, scale: 'css' });
        shots.push(hf);
        await hp.close();

        const sp = await newPage(ctx, origin, 'summary', theme, { width: 1280, height: 900 });
        await sp.evaluate((data) => window.dispatchEvent(new MessageEvent('message', { data })), {
          type: 'summary',
          summary,
          runDir: '/work/runs/olmoe-mmlu-test',
        });
        await sp.locator('rect.cell[data-layer="2"][data-expert="5"]').click({ force: true });
        const sf = join(shotsDir, `summary-${theme}.png`);
        await sp.screenshot({ path: sf, fullPage: true, scale: 'css' });
        shots.push(sf);
        const errs = (sp as unknown as { __errors: string[] }).__errors;
        const spCsp = (await sp.evaluate(() => (window as unknown as BenchWindow).__csp)) as unknown[];
        if (errs.length || spCsp.length) console.log('summary page problems', errs, spCsp);
        await sp.close();
      }
      console.log(`screenshots:\n  ${shots.join('\n  ')}`);
    }
  } finally {
    await site.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
