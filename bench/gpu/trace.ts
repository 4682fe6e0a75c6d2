/**
 * One engine, one model load: a T-token trace (one warm-up, then timed repetitions), printed as JSON.
 * Used by bench/gpu/run.sh (PyTorch engine on the GPU machine) and bench/engines.ts (both engines here).
 *   node dist/bench/gpu/trace.js --model DIR --text-file FILE [--engine pytorch] [--python PATH] [--tokens 600] [--reps 3]
 */
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { openBackend } from '../../src/cli/backend';

export interface TraceBench {
  engine: string;
  device: string;
  dtype: string;
  loadMs: number;
  tokens: number;
  warmupMs: number;
  traceMs: number[];
  medianTraceMs: number;
  tokensPerSecond: number;
}

export async function traceBench(opts: { model: string; text: string; engine: string; python?: string; tokens: number; reps: number; provider?: 'auto' | 'cpu' | 'cuda' }): Promise<TraceBench> {
  const backend = await openBackend(opts.engine, opts.python, (level, m) => level === 'error' && process.stderr.write(m + '\n'));
  try {
    const t0 = Date.now();
    const info = await backend.call('load', { modelPath: opts.model, options: { executionProvider: opts.provider ?? 'auto' } });
    const loadMs = Date.now() - t0;
    let [enc] = await backend.call('tokenize', { texts: [opts.text] });
    while (enc.ids.length < opts.tokens) [enc] = await backend.call('tokenize', { texts: [opts.text.repeat(Math.ceil((2 * opts.tokens) / Math.max(1, enc.ids.length)))] });
    const ids = enc.ids.slice(0, opts.tokens);
    const options = { includeProbs: true, includeLastLogits: false };
    const w0 = Date.now();
    await backend.call('trace', { input: { ids }, options });
    const warmupMs = Date.now() - w0;
    const times: number[] = [];
    for (let r = 0; r < opts.reps; r++) {
      const s = Date.now();
      const res = await backend.call('trace', { input: { ids }, options });
      times.push(Date.now() - s);
      if (res.routing.numTokens !== ids.length) throw new Error(`trace returned ${res.routing.numTokens} tokens of routing for ${ids.length}`);
      if (!res.answerLogProbs.every(Number.isFinite)) throw new Error(`trace gave non-finite answer log-probabilities ${res.answerLogProbs}`);
    }
    const median = [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)];
    return {
      engine: backend.kind,
      device: info.device ?? info.executionProvider,
      dtype: info.dtype,
      loadMs,
      tokens: ids.length,
      warmupMs,
      traceMs: times,
      medianTraceMs: median,
      tokensPerSecond: Math.round((ids.length / median) * 1000),
    };
  } finally {
    await backend.dispose();
  }
}

if (require.main === module) {
  const { values } = parseArgs({
    options: {
      model: { type: 'string' },
      'text-file': { type: 'string' },
      engine: { type: 'string', default: 'pytorch' },
      python: { type: 'string' },
      tokens: { type: 'string', default: '600' },
      reps: { type: 'string', default: '3' },
    },
  });
  if (!values.model || !values['text-file']) {
    process.stderr.write('usage: trace.js --model DIR --text-file FILE [--engine pytorch] [--python PATH] [--tokens 600] [--reps 3]\n');
    process.exit(2);
  }
  traceBench({ model: values.model, text: fs.readFileSync(values['text-file'], 'utf8'), engine: values.engine!, python: values.python, tokens: Number(values.tokens), reps: Number(values.reps) }).then(
    (r) => process.stdout.write(JSON.stringify(r) + '\n'),
    (e) => {
      process.stderr.write(`trace benchmark failed: ${(e as Error).message}\n`);
      process.exit(1);
    },
  );
}
