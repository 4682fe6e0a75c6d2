/** One engine, one model load: a T-token trace (one warm-up, then timed repetitions). No main: a library for trace.ts and ../engines.ts. */
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

export async function traceBench(opts: {
  model: string;
  text: string;
  engine: string;
  python?: string;
  tokens: number;
  reps: number;
  provider?: 'auto' | 'cpu' | 'cuda';
}): Promise<TraceBench> {
  const backend = await openBackend(opts.engine, opts.python, (level, m) => level === 'error' && process.stderr.write(m + '\n'));
  try {
    const t0 = Date.now();
    const info = await backend.call('load', { modelPath: opts.model, options: { executionProvider: opts.provider ?? 'auto' } });
    const loadMs = Date.now() - t0;
    let [enc] = await backend.call('tokenize', { texts: [opts.text] });
    while (enc.ids.length < opts.tokens)
      [enc] = await backend.call('tokenize', { texts: [opts.text.repeat(Math.ceil((2 * opts.tokens) / Math.max(1, enc.ids.length)))] });
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
