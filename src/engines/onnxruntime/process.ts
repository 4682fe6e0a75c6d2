/** Entry point of the inference process, forked by the extension host (protocol: serveProcess.ts). */
import { Engine } from './engine';
import { sendToHost, serveEngineProcess } from './serveProcess';

serveEngineProcess(new Engine((level, message) => sendToHost({ type: 'log', level, message })));
