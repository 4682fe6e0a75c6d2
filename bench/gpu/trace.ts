/**
 * One engine, one model load: a T-token trace (one warm-up, then timed repetitions), printed as JSON.
 * Used by bench/gpu/run.sh (PyTorch engine on the GPU machine) and bench/engines.ts (both engines here).
 *   node dist/bench/gpu/trace.js --model DIR --text-file FILE [--engine pytorch] [--python PATH] [--tokens 600] [--reps 3]
 */
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { traceBench } from './traceBench';

{
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
  traceBench({
    model: values.model,
    text: fs.readFileSync(values['text-file'], 'utf8'),
    engine: values.engine!,
    python: values.python,
    tokens: Number(values.tokens),
    reps: Number(values.reps),
  }).then(
    (r) => process.stdout.write(JSON.stringify(r) + '\n'),
    (e) => {
      process.stderr.write(`trace benchmark failed: ${(e as Error).message}\n`);
      process.exit(1);
    },
  );
}
