/**
 * The null engine (test/support/nullEngine.ts) as an inference process, served exactly like
 * src/engines/onnxruntime/process.ts, so a benchmark can time the engine process protocol without a model.
 */
import { NullEngine } from '../test/support/nullEngine';
import { serveEngineProcess } from '../src/engines/onnxruntime/serveProcess';

serveEngineProcess(new NullEngine());
