/**
 * node --test reporter: the built-in spec reporter, less the warnings Dawn (the WebGPU implementation inside
 * onnxruntime-node) writes straight to the standard error of every test process that creates a WebGPU
 * adapter ("Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16 ...",
 * on every successful run on lavapipe). Node cannot intercept native writes inside the test process, but
 * the test runner hands each test file's stderr to the reporter, so they are dropped here.
 *
 * Only whole lines matching DAWN_NOISE are dropped; they are appended to MOE_TEST_NATIVE_LOG (default
 * test-results/native-diagnostics.log), and the TAP report keeps every line. Everything else, failures
 * included, is printed as the spec reporter prints it.
 *
 *   node --test --test-reporter=./scripts/lib/quiet-spec-reporter.mjs --test-reporter-destination=stdout FILES
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { spec } from 'node:test/reporters';

export const DAWN_NOISE = [/^Warning: \w+ artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.\r?\n?$/];

export function isDawnNoise(line) {
  return DAWN_NOISE.some((re) => re.test(line));
}

function logFile() {
  return process.env.MOE_TEST_NATIVE_LOG || path.join(process.cwd(), 'test-results', 'native-diagnostics.log');
}

async function* withoutDawnNoise(source) {
  for await (const event of source) {
    if ((event.type === 'test:stderr' || event.type === 'test:stdout') && typeof event.data?.message === 'string') {
      const lines = event.data.message.split(/(?<=\n)/);
      const dropped = lines.filter(isDawnNoise);
      if (dropped.length > 0) {
        try {
          fs.mkdirSync(path.dirname(logFile()), { recursive: true });
          fs.appendFileSync(logFile(), dropped.map((l) => `${event.data.file ?? ''}: ${l.endsWith('\n') ? l : `${l}\n`}`).join(''));
        } catch {
          // The log is a convenience; the TAP report keeps the lines too.
        }
        const kept = lines.filter((l) => !isDawnNoise(l)).join('');
        if (kept === '') continue;
        yield { ...event, data: { ...event.data, message: kept } };
        continue;
      }
    }
    yield event;
  }
}

export default async function* quietSpecReporter(source) {
  yield* Readable.from(withoutDawnNoise(source)).pipe(new spec());
}
