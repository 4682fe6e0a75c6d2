// End-to-end suite: MoE Scope in a real VS Code (code-server) driven through Chromium.
// Run: node esbuild.mjs && node --test --test-reporter=spec dist-test/e2e/suite.js   (scripts/e2e.sh does it)
//
// One code-server, one browser and one workspace for the whole suite; the tests run in order and build
// on each other (trace -> heatmap -> evaluation -> summary -> screenshots). Environment:
//   MOE_E2E_VSIX=path.vsix   install that VSIX instead of loading the repo as the development extension
//   MOE_E2E_BACKEND=electron desktop VS Code instead of code-server (run through dist-test/e2e/electron.js)
//   MOE_E2E_KEEP_TMP=1       keep code-server's temp dir (logs) after the run
//   MOE_E2E_ONLY=a,b         run only the named steps (the others are skipped)
//   MOE_E2E_MODEL=DIR        use a copy of that checkpoint instead of the random demo model (screenshots: the trained demo model)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import type { FrameLocator, Page } from 'playwright-core';
import * as h from './harness';
import { backendFromEnv, startSession, type Session } from './session';
import { cliTokenCount, createWorkspace, removeWorkspace, singleLineRecords, type Workspace } from './fixtures';
import { findQuestionAtCursor } from '../../src/mmlu/questionAtCursor';
import { formatItem, promptHeader } from '../../src/mmlu/prompt';

const COMMANDS = [
  'MoE: Trace selection',
  'MoE: Select model...',
  'MoE: Run MMLU evaluation',
  'MoE: Show evaluation summary',
  'MoE: Open expert heatmap',
  'MoE: Restart inference process',
  'MoE: Run sweep...',
];
const DEMO_LAYERS = 16; // the OLMoE-shaped demo model
const LETTERS = ['A', 'B', 'C', 'D'];

let ws: Workspace;
let session: Session | undefined;
let page: Page;

const only = (process.env.MOE_E2E_ONLY ?? '').split(',').filter(Boolean);

/** A test step that saves a screenshot and prints the extension's log when it fails. */
function step(name: string, timeoutMs: number, fn: () => Promise<void>): void {
  const skip = only.length > 0 && !only.some((o) => name.startsWith(o));
  test(name, { timeout: timeoutMs, skip }, async () => {
    try {
      await fn();
    } catch (e) {
      if (page) await h.screenshot(page, `FAILED-${name}`).catch(() => undefined);
      const logs = extensionLog();
      if (logs) console.error(`--- MoE Scope output (last lines) ---\n${logs}`);
      if (session) console.error(`--- ${session.backend} (last lines) ---\n${session.logTail(25)}`);
      throw e;
    }
  });
}

/** The last lines of the "MoE Scope" output channel, from the extension host's log folder. */
function extensionLog(lines = 40): string {
  if (!session) return '';
  const found: string[] = [];
  const walk = (d: string) => {
    for (const n of safeList(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else if (/MoE Scope/i.test(n) && n.endsWith('.log')) found.push(p);
    }
  };
  walk(join(session.userDataDir, 'logs'));
  return found.map((f) => `${f}:\n${readFileSync(f, 'utf8').split('\n').slice(-lines).join('\n')}`).join('\n');
}

function safeList(d: string): string[] {
  try {
    return readdirSync(d);
  } catch {
    return [];
  }
}

/** The trace panel's DOM once its root reports `state` (or an error, which fails with its message). */
async function traceView(state: 'ready' | 'error' | 'loading', timeoutMs: number = h.TIMEOUTS.trace): Promise<FrameLocator> {
  const wv = await h.webviewFrame(page, 'MoE Trace');
  const root = wv.locator('[data-testid=trace-view]');
  await root.waitFor({ state: 'attached', timeout: h.TIMEOUTS.webview }).catch((e: Error) => {
    throw new Error(`the trace panel did not render its view ([data-testid=trace-view] missing): ${e.message.split('\n')[0]}`);
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await root.getAttribute('data-state').catch(() => null);
    if (s === state) return wv;
    if (s === 'error' && state !== 'error') {
      const msg = await wv
        .locator('[data-testid=trace-error]')
        .textContent()
        .catch(() => '');
      throw new Error(`the trace view shows an error instead of "${state}": ${msg}`);
    }
    if (Date.now() > deadline) throw new Error(`trace view did not reach data-state=${state} in ${timeoutMs} ms (last: ${s})`);
    await h.sleep(state === 'loading' ? 25 : 200);
  }
}

/** Selects a question row of the workspace's test CSV and returns the prompt the extension should trace. */
async function selectQuestion(line?: number): Promise<{ line: number; prompt: string }> {
  const file = join(ws.root, ws.questionsFile);
  const text = readFileSync(file, 'utf8');
  const l = line ?? singleLineRecords(file)[2]!;
  await h.openFile(page, ws.questionsFile);
  await h.selectLines(page, l);
  // The prompt the extension builds for that row: the harness format, zero-shot, ending in "Answer:".
  const lineStart = text
    .split('\n')
    .slice(0, l - 1)
    .reduce((n, s) => n + s.length + 1, 0);
  const found = findQuestionAtCursor({ text, fileName: file, selectionStart: lineStart, selectionEnd: lineStart + 1 });
  assert.ok(found.ok, `line ${l} of ${ws.questionsFile} is not a question: ${!found.ok && found.message}`);
  return { line: l, prompt: `${promptHeader(found.question.subject)}${formatItem(found.question)}\nAnswer:` };
}

async function traceReadyChecks(wv: FrameLocator, prompt: string): Promise<void> {
  assert.equal(await wv.locator('[data-testid=layer-label]').count(), DEMO_LAYERS, 'one layer label per layer');
  const tokens = await wv.locator('[data-testid=token]').count();
  assert.ok(tokens > 10, `token count ${tokens} > 10`);
  assert.equal(
    tokens,
    cliTokenCount(ws.modelDir, prompt, ws.cacheDir),
    'the panel shows one token per prompt token (as `moe-scope trace` tokenizes the prompt)',
  );
  const probs = wv.locator('[data-testid=answer-prob]');
  assert.equal(await probs.count(), 4, 'four answer probabilities');
  assert.deepEqual(await probs.evaluateAll((els) => els.map((e) => e.getAttribute('data-letter'))), LETTERS);
}

describe(`MoE Scope in VS Code (${backendFromEnv()})`, { concurrency: false }, () => {
  before(async () => {
    ws = createWorkspace();
    session = await startSession({
      workspace: ws.root,
      backend: backendFromEnv(),
      extensionVsix: process.env.MOE_E2E_VSIX || undefined,
      theme: 'Default Dark Modern',
    });
    page = session.page;
  });

  after(async () => {
    await session?.stop();
    removeWorkspace(ws);
  });

  step('a: workbench loads the extension; the palette lists the MoE commands', 120_000, async () => {
    // The command registers when the extension activates (onStartupFinished): runCommand-style retry.
    await h.waitFor(
      'the MoE commands in the palette',
      async () => {
        await h.closeQuickInput(page);
        await page.keyboard.press('F1');
        await page.locator('.quick-input-widget input').fill('>MoE:');
        await h.sleep(500);
        const labels = await h.quickPickLabels(page);
        return COMMANDS.every((c) => labels.includes(c)) ? labels : undefined;
      },
      90_000,
      1000,
    );
    await h.closeQuickInput(page);
    // Its own activity-bar container.
    assert.ok(await page.locator('.activitybar [aria-label^="MoE Scope"]').count(), 'a "MoE Scope" activity bar entry');
    // Before the first trace the status bar names the configured model and says it is not loaded yet.
    await h.waitFor(
      'the status bar: the model name and "not loaded yet"',
      async () => {
        const t =
          (await page
            .locator('.part.statusbar .statusbar-item', { hasText: 'MoE:' })
            .first()
            .textContent({ timeout: 2_000 })
            .catch(() => '')) ?? '';
        return /MoE: .+ \(not loaded yet\)/.test(t) ? t : undefined;
      },
      30_000,
      500,
    );
    await h.screenshot(page, 'workbench-dark');
  });

  step('b: trace a selected MMLU question', 240_000, async () => {
    const { prompt } = await selectQuestion();
    await h.runCommand(page, 'MoE: Trace selection');
    const wv = await traceView('ready');
    await traceReadyChecks(wv, prompt);
    assert.equal(await wv.locator('[data-testid=entropy-sparkline]').count(), DEMO_LAYERS, 'one entropy sparkline per layer');
    await h.screenshot(page, 'trace-dark');
  });

  step('c: a selection that is not a question shows a clear message', 120_000, async () => {
    await h.openFile(page, ws.notesFile);
    await h.selectLines(page, 1);
    await h.runCommand(page, 'MoE: Trace selection');
    const wv = await traceView('error', 60_000);
    const msg = (await wv.locator('[data-testid=trace-error]').textContent()) ?? '';
    assert.match(msg, /not an MMLU question/i);
  });

  step('f: killing the inference process mid-trace shows the error; the next trace works', 300_000, async () => {
    await h.openFile(page, ws.longFile);
    await h.selectLines(page, 1);
    await h.runCommand(page, 'MoE: Trace selection');
    await traceView('loading', 30_000);
    const pids = await h.waitFor(
      'an inference process',
      () => {
        const p = h.findProcesses('inference-process.js', session!.processRoot);
        return p.length ? p : undefined;
      },
      30_000,
      50,
    );
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    const wv = await traceView('error', 60_000);
    const msg = (await wv.locator('[data-testid=trace-error]').textContent()) ?? '';
    assert.ok(msg.trim().length > 0, 'the error names what happened');
    // The next trace starts a fresh inference process.
    const { prompt } = await selectQuestion();
    await h.runCommand(page, 'MoE: Trace selection');
    await traceReadyChecks(await traceView('ready'), prompt);
    const after = h.findProcesses('inference-process.js', session!.processRoot);
    assert.ok(after.length > 0 && after.every((p) => !pids.includes(p)), 'a new inference process serves the trace');
  });

  step('e: the side-panel heatmap shows the last trace', 120_000, async () => {
    await h.runCommand(page, 'MoE: Open expert heatmap');
    const hm = await h.webviewContaining(page, '[data-testid=heatmap]');
    assert.ok(await hm.locator('[data-testid=heatmap]').first().isVisible(), 'heatmap visible');
    assert.equal(await hm.locator('[data-testid=heatmap-source]').count(), 1, 'a heatmap source control');
    await h.screenshot(page, 'heatmap-dark');
  });

  step('l: the expert lens: picked from the gate chart, the layer x expert matrix (keyboard) and the heatmap', 180_000, async () => {
    const wv = await traceView('ready');
    const tokens = await wv.locator('[data-testid=token]').count();
    // The routing map fits its panel (it scrolls inside; the page does not grow sideways).
    const [mapWidth, sectionWidth] = await wv
      .locator('[data-testid=routing-section]')
      .evaluate((s) => [s.querySelector('.rm')!.getBoundingClientRect().width, s.getBoundingClientRect().width]);
    assert.ok(mapWidth <= sectionWidth + 1, `routing map ${mapWidth} px within its section ${sectionWidth} px`);
    // "Answer position" selects the scored position: the last token, in the last layer.
    await wv.locator('[data-testid=rm-answer]').click();
    const gd = wv.locator('[data-testid=gate-distribution]');
    await gd.waitFor({ timeout: h.TIMEOUTS.webview });
    assert.equal(await gd.getAttribute('data-token'), String(tokens - 1), 'the answer position is the last token');
    // Click a chosen expert in the gate chart: the lens shows where that expert is chosen.
    const bar = gd.locator('rect.bar[data-chosen=true]').first();
    const expert = Number(await bar.getAttribute('data-expert'));
    await bar.click();
    const summary = wv.locator('[data-testid=lens-summary]');
    const lensOn = (e: number) =>
      h.waitFor(`the lens on expert ${e}`, async () => new RegExp(`^Expert ${e}:`).test((await summary.textContent()) ?? ''), 15_000, 200);
    await lensOn(expert);
    const cells = wv.locator('[data-testid=lens-grid] rect.lens-cell');
    assert.equal(await cells.count(), DEMO_LAYERS * tokens, 'one lens cell per (layer, token)');
    const chosen = Number(await summary.getAttribute('data-chosen'));
    assert.ok(chosen >= 1, 'the expert picked at the answer position is chosen there at least');
    assert.equal(await wv.locator('[data-testid=lens-grid] rect.lens-cell:not(.empty)').count(), chosen, 'filled cells = where it is chosen');
    const [gridWidth, lensWidth] = await wv
      .locator('[data-testid=lens-section]')
      .evaluate((s) => [s.querySelector('[data-testid=lens-grid] svg')!.getBoundingClientRect().width, s.getBoundingClientRect().width]);
    assert.ok(gridWidth > 0 && gridWidth <= lensWidth + 1, `the lens (${gridWidth} px) fits its section (${lensWidth} px): the answer column is on screen`);
    // Keyboard: the layer x expert matrix of the answer position; Home, two steps right, Enter picks expert 2.
    const mx = wv.locator('[data-testid=lens-matrix]');
    await mx.focus();
    await page.keyboard.press('Home');
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('Enter');
    await lensOn(2);
    await h.screenshot(page, 'lens-dark');
    // From the side-panel heatmap: an expert's details offer the lens.
    await h.runCommand(page, 'MoE: Open expert heatmap');
    const hm = await h.webviewContaining(page, '[data-testid=heatmap]');
    const cell = hm.locator('rect.cell[data-layer="0"]:not([data-never="true"])').first();
    const fromHeatmap = Number(await cell.getAttribute('data-expert'));
    await cell.click();
    await hm.locator('[data-testid=heatmap-lens]').click({ timeout: h.TIMEOUTS.webview });
    const wv2 = await traceView('ready');
    await h.waitFor(
      `the lens on expert ${fromHeatmap} (from the heatmap)`,
      async () => new RegExp(`^Expert ${fromHeatmap}:`).test((await wv2.locator('[data-testid=lens-summary]').textContent()) ?? ''),
      15_000,
      200,
    );
  });

  step('d: the evaluation task writes a run whose summary view matches summary.json', 900_000, async () => {
    await h.runCommand(page, 'Tasks: Run Task');
    await h.pickQuickItem(page, 'MoE Scope: evaluate mmlu');
    const summaryFile = await h.waitFor(
      'a finished evaluation run (summary.json)',
      async () => {
        // A task that ended without writing its summary fails now, with its output, not at the timeout.
        const term = await h.terminalText(page);
        const ended = /Terminal will be reused by tasks|The terminal process .* terminated/.test(term);
        for (const run of safeList(ws.runsDir)) {
          const f = join(ws.runsDir, run, 'summary.json');
          if (!existsSync(f)) continue;
          const s = JSON.parse(readFileSync(f, 'utf8')) as { complete?: boolean; questions?: number };
          if (s.complete !== false && typeof s.questions === 'number') return f;
        }
        if (ended) throw new h.FatalWait(`the evaluation task ended without a summary.json:\n${term.trim()}`);
        return undefined;
      },
      h.TIMEOUTS.evaluation,
      1000,
    );
    const summary = JSON.parse(readFileSync(summaryFile, 'utf8')) as { questions: number; neverActivatedTotal?: number; layers?: unknown };
    assert.equal(summary.questions, 6, '3 subjects x limitPerSubject 2');
    // The task's terminal reports the same count.
    await h.waitFor(
      'the task output "Finished: 6 questions"',
      async () => (await h.terminalText(page)).includes(`Finished: ${summary.questions} questions`),
      30_000,
    );
    await h.runCommand(page, 'MoE: Show evaluation summary');
    const sv = await h.webviewFrame(page, 'MoE Summary');
    const q = sv.locator('[data-testid=summary-questions]');
    await q.waitFor({ timeout: h.TIMEOUTS.webview });
    assert.equal((await q.textContent())?.trim(), String(summary.questions));
    assert.equal(typeof summary.neverActivatedTotal, 'number', 'summary.json has neverActivatedTotal');
    const never = sv.locator('[data-testid=never-activated-total]').first();
    assert.equal((await never.textContent())?.trim(), String(summary.neverActivatedTotal), 'summary view: never-activated total');
    await h.screenshot(page, 'summary-dark');
    // The side-panel heatmap switches to the finished run and shows the same total.
    await h.runCommand(page, 'MoE: Open expert heatmap');
    const hm = await h.webviewContaining(page, '[data-testid=heatmap-view]');
    await h.waitFor(
      `the heatmap's never-activated total ${summary.neverActivatedTotal}`,
      async () => (await hm.locator('[data-testid=never-activated-total]').first().textContent())?.trim() === String(summary.neverActivatedTotal),
      30_000,
    );
  });

  step('h: from the finished run, prune never-activated experts, run the experiment, open the comparison', 900_000, async () => {
    const baseline = safeList(ws.runsDir)
      .map((r) => join(ws.runsDir, r))
      .find((d) => existsSync(join(d, 'summary.json')) && !d.includes('--'));
    assert.ok(baseline, 'a finished baseline run from step d');
    const base = JSON.parse(readFileSync(join(baseline, 'summary.json'), 'utf8')) as {
      layers: { layer: number; neverActivated: number[] }[];
      accuracy: { micro: number };
    };
    // The summary view's own button starts the experiment for the run it shows.
    await h.runCommand(page, 'MoE: Show evaluation summary');
    const sv = await h.webviewFrame(page, 'MoE Summary');
    await sv.locator('[data-testid=new-experiment]').click({ timeout: h.TIMEOUTS.webview });
    await h.pickQuickItem(page, 'Prune never-activated experts');
    await h.pickQuickItem(page, 'Run experiment');
    // When the experiment's task finishes, the comparison with its baseline opens by itself.
    const cv = await h.webviewFrame(page, 'MoE Compare', h.TIMEOUTS.evaluation);
    const words = cv.locator('[data-testid=mcnemar-words]');
    await words.waitFor({ timeout: h.TIMEOUTS.webview });
    const expDir = `${baseline}--prune-never-activated`;
    const manifest = JSON.parse(readFileSync(join(expDir, 'manifest.json'), 'utf8')) as { intervention: { mask: [number, number][] } };
    assert.deepEqual(
      manifest.intervention.mask,
      base.layers.flatMap((l) => l.neverActivated.map((e) => [l.layer, e])),
      'the experiment masks exactly the never-activated experts',
    );
    const exp = JSON.parse(readFileSync(join(expDir, 'summary.json'), 'utf8')) as { complete: boolean; questions: number; accuracy: { micro: number } };
    assert.equal(exp.complete, true);
    assert.match((await words.textContent()) ?? '', new RegExp(`^Of ${exp.questions} questions answered by both`));
    const d = exp.accuracy.micro - base.accuracy.micro;
    assert.equal(
      (await cv.locator('[data-testid=compare-micro-delta]').textContent())?.trim(),
      `${d > 0 ? '+' : d < 0 ? '−' : '±'}${(100 * Math.abs(d)).toFixed(1)} pt`,
    );
    assert.equal(await cv.locator('.diff-cell[data-masked=true]').count(), manifest.intervention.mask.length, 'masked experts crossed out in the heatmap');
    // Room for the README's picture: the comparison's group maximised, side bars and panel hidden.
    await h.runCommand(page, 'View: Maximize Editor Group and Hide Side Bars');
    await h.runCommand(page, 'View: Hide Panel');
    await h.sleep(1000);
    await h.screenshot(page, 'compare-dark');
    await cv.locator('[data-testid=compare-activation]').scrollIntoViewIfNeeded();
    await h.sleep(500);
    await h.screenshot(page, 'compare-activation-dark');
    await cv.locator('[data-testid=compare-view]').evaluate((el) => el.scrollIntoView());
    // Back to the usual layout for the next steps' pictures: other editor groups (when there were any,
    // the toggle is offered only then) and the side bar with the heatmap.
    if (
      await h.runCommand(page, 'View: Toggle Maximize Editor Group', 5_000).then(
        () => true,
        () => false,
      )
    )
      console.log('# restored the editor groups');
    await h.runCommand(page, 'MoE: Open expert heatmap');
    await h.runCommand(page, 'View: Toggle Panel Visibility');
  });

  step(
    'j: a pruning plan by score flips questions: the comparison lists them and traces one before and after; two calibration sets compared',
    900_000,
    async () => {
      const baseline = safeList(ws.runsDir)
        .map((r) => join(ws.runsDir, r))
        .find((d) => existsSync(join(d, 'summary.json')) && !d.includes('--'));
      assert.ok(baseline, 'a finished baseline run from step d');
      const cliRun = (args: string[]) => {
        const r = spawnSync(process.execPath, [join(h.REPO_ROOT, 'dist', 'cli.js'), ...args, '--provider', 'cpu', '--cache', ws.cacheDir, '--quiet'], {
          encoding: 'utf8',
          timeout: 600_000,
        });
        assert.equal(r.status, 0, `moe-scope ${args[0]}: ${r.stderr}`);
      };
      // A deep cut: the lowest 85% of (layer, expert) pairs by activation count, every layer keeping its top-k.
      const cut = join(ws.runsDir, 'cut-count-85');
      cliRun(['experiment', '--baseline', baseline, '--prune-by', 'count', '--ratio', '0.85', '--global', '--out', cut, '--batch-size', '8']);
      const outcomes = (dir: string) =>
        new Map(
          readFileSync(join(dir, 'records.jsonl'), 'utf8')
            .split('\n')
            .filter(Boolean)
            .flatMap((l) => (JSON.parse(l) as { questions: { id: string; correct: boolean }[] }).questions)
            .map((q) => [q.id, q.correct]),
        );
      const before = outcomes(baseline);
      const afterCut = outcomes(cut);
      const flipped = [...before].filter(([id, ok]) => afterCut.has(id) && afterCut.get(id) !== ok).map(([id]) => id);
      console.log(`# the cut flipped ${flipped.length} of ${before.size} questions`);

      await h.runCommand(page, 'MoE: Compare runs');
      await h.pickQuickItem(page, 'cut-count-85');
      const cv = await h.webviewFrame(page, 'MoE Compare: cut-count-85');
      await cv.locator('[data-testid=compare-flipped]').waitFor({ timeout: h.TIMEOUTS.webview });
      assert.equal(await cv.locator('[data-testid=flipped-row]').count(), flipped.length, 'one row per flipped question');
      assert.deepEqual(
        (await cv.locator('[data-testid=flipped-row]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-id')))).sort(),
        flipped.sort(),
      );
      if (flipped.length > 0) {
        await cv.locator('[data-testid=flipped-row] [data-testid=flipped-open]').first().click();
        await cv.locator('[data-testid=flipped-trace-a]').waitFor({ timeout: h.TIMEOUTS.evaluation });
        await cv.locator('[data-testid=flipped-trace-b]').waitFor({ timeout: h.TIMEOUTS.webview });
        assert.match((await cv.locator('[data-testid=flipped-trace-title]').textContent()) ?? '', /before \(A\) and after \(B\)/);
        await h.screenshot(page, 'compare-flipped-dark');
      }

      // Two calibration sets: the same model on different subjects, compared before any pruned run.
      const data = join(ws.root, 'mmlu');
      const calibA = join(ws.runsDir, 'calib-astronomy');
      const calibB = join(ws.runsDir, 'calib-geography');
      cliRun(['eval', '--model', ws.modelDir, '--data', data, '--out', calibA, '--shots', '0', '--limit', '3', '--subjects', 'astronomy']);
      cliRun(['eval', '--model', ws.modelDir, '--data', data, '--out', calibB, '--shots', '0', '--limit', '3', '--subjects', 'high_school_geography']);
      await h.runCommand(page, 'MoE: Compare runs');
      await h.pickQuickItem(page, 'Choose two runs');
      await h.pickQuickItem(page, 'calib-astronomy');
      await h.pickQuickItem(page, 'calib-geography');
      const cal = await h.webviewFrame(page, 'MoE Compare: calib-geography');
      await cal.locator('[data-testid=compare-calibration]').waitFor({ timeout: h.TIMEOUTS.webview });
      const sa = JSON.parse(readFileSync(join(calibA, 'summary.json'), 'utf8')) as { layers: { activationCounts: number[] }[] };
      const sb = JSON.parse(readFileSync(join(calibB, 'summary.json'), 'utf8')) as { layers: { activationCounts: number[] }[] };
      assert.equal(await cal.locator('[data-testid=calibration-row]').count(), sa.layers.length);
      // Layer 0's Jensen-Shannon divergence, computed here from the two summaries' counts.
      const norm = (v: number[]) => v.map((x) => x / v.reduce((a, b) => a + b, 0));
      const p = norm(sa.layers[0]!.activationCounts);
      const q = norm(sb.layers[0]!.activationCounts);
      let js = 0;
      p.forEach((a, i) => {
        const m = (a + q[i]!) / 2;
        if (a > 0) js += 0.5 * a * Math.log2(a / m);
        if (q[i]! > 0) js += 0.5 * q[i]! * Math.log2(q[i]! / m);
      });
      assert.equal((await cal.locator('[data-testid=calibration-row][data-layer="0"] [data-testid=calibration-js]').textContent())?.trim(), js.toFixed(4));
      await h.screenshot(page, 'compare-calibration-dark');
    },
  );

  step('i: "MoE: Run sweep..." on a SPEC runs the sweep task; the Sweeps view lists its experiments with accuracy', 600_000, async () => {
    const spec = {
      data: '../mmlu',
      limit: 1,
      batchSize: 2,
      shards: 2,
      provider: 'cpu',
      cache: ws.cacheDir,
      models: [{ name: 'demo', path: ws.modelDir }],
      shots: [0, 1],
    };
    mkdirSync(join(ws.root, 'sweeps'), { recursive: true });
    writeFileSync(join(ws.root, 'sweeps', 'tiny.json'), JSON.stringify(spec, null, 2));
    await h.openFile(page, 'sweeps/tiny.json');
    await h.runCommand(page, 'MoE: Run sweep...');
    const summaryFile = join(ws.root, '.moe-scope', 'sweeps', 'tiny', 'sweep-summary.json');
    type Row = { name: string; status: string; questions: number; accuracyMicro: number; neverActivatedTotal: number };
    const rows = await h.waitFor(
      'the sweep task merging both experiments (sweep-summary.json)',
      async () => {
        if (!existsSync(summaryFile)) return undefined;
        const r = JSON.parse(readFileSync(summaryFile, 'utf8')).experiments as Row[];
        return r.length === 2 && r.every((x) => x.status === 'merged') ? r : undefined;
      },
      h.TIMEOUTS.evaluation,
      1000,
    );
    assert.deepEqual(
      rows.map((r) => r.questions),
      [3, 3],
      '3 subjects x limit 1',
    );
    // Per-experiment progress in the task terminal.
    await h.waitFor(
      'per-experiment progress in the terminal',
      async () => /demo\.onnxruntime\.1shot\.answer\.none: 2\/2 shards finished/.test(await h.terminalText(page)),
      30_000,
    );
    // The Sweeps view: one row per experiment with its accuracy and never-activated count.
    await h.runCommand(page, 'MoE: Open expert heatmap'); // reveals the MoE Scope side bar, where the Sweeps view is
    await h.runCommand(page, 'MoE: Refresh sweeps');
    for (const r of rows) {
      // Rows are labelled by what sets the experiment apart: here its shots.
      const row = page.locator('.monaco-list-row', { hasText: `${/\.(\d)shot\./.exec(r.name)![1]}-shot` }).first();
      await row.waitFor({ state: 'visible', timeout: 30_000 });
      const text = (await row.textContent()) ?? '';
      assert.ok(text.includes(`${(100 * r.accuracyMicro).toFixed(1)}%`), `${r.name}: accuracy in "${text}"`);
      assert.ok(text.includes(`${r.neverActivatedTotal} never-activated`), `${r.name}: never-activated in "${text}"`);
    }
    await h.screenshot(page, 'sweeps-dark');
  });

  step('g: screenshots in the light theme', 180_000, async () => {
    await h.setColorTheme(page, 'Default Light Modern');
    for (const [title, name] of [
      ['MoE Summary', 'summary-light'],
      ['MoE Trace', 'trace-light'],
      ['MoE Compare', 'compare-light'],
    ] as const) {
      if ((await page.locator('.part.editor .tabs-container .tab').filter({ hasText: title }).count()) === 0) continue;
      await h.webviewFrame(page, title);
      await h.sleep(1000); // let the webview repaint with the new theme's colours
      await h.screenshot(page, name);
    }
    await h.runCommand(page, 'MoE: Open expert heatmap');
    await h.webviewContaining(page, '[data-testid=heatmap]');
    await h.sleep(1000);
    await h.screenshot(page, 'heatmap-light');
    await h.setColorTheme(page, 'Default Dark Modern');
  });
});
