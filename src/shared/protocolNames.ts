/**
 * Everything the PyTorch worker needs from protocol.ts, as plain JSON. `node scripts/protocol-names.mjs`
 * writes it to python/moe_scope_worker/protocol_names.json, which protocol.py reads; the unit test
 * pytorch-protocol.test.ts fails when the file is not what this function returns, so a method, error
 * code, message type, ModelInfo key, family, exit code, answer cue or config field rule (configFields.ts) changed
 * here reaches Python or fails a test.
 */
import {
  ANSWER_CUE,
  ANSWER_LETTERS,
  ENGINE_ERROR_CODES,
  ENGINE_KINDS,
  ENGINE_METHODS,
  ENGINE_TO_HOST_TYPES,
  EXIT_CODES,
  HOST_TO_ENGINE_TYPES,
  MODEL_INFO_FIELDS,
  MOE_FAMILIES,
  ROUTING_POSITIONS,
  WORKER_TOKENIZE_FIELDS,
  WORKER_TRACE_FIELDS,
} from './protocol';
import { CONFIG_ALIASES, CONFIG_DEFAULTS, CONFIG_FIELD_TYPES } from './configFields';

export const PROTOCOL_NAMES_FILE = 'python/moe_scope_worker/protocol_names.json';

export function protocolNames() {
  return {
    comment: 'Generated from src/shared/protocol.ts by `node scripts/protocol-names.mjs`; do not edit.',
    methods: [...ENGINE_METHODS],
    errorCodes: [...ENGINE_ERROR_CODES],
    hostToEngineTypes: [...HOST_TO_ENGINE_TYPES],
    engineToHostTypes: [...ENGINE_TO_HOST_TYPES],
    routingPositions: [...ROUTING_POSITIONS],
    engineKinds: [...ENGINE_KINDS],
    families: [...MOE_FAMILIES],
    modelInfoFields: { ...MODEL_INFO_FIELDS },
    workerTokenizeFields: { ...WORKER_TOKENIZE_FIELDS },
    workerTraceFields: { ...WORKER_TRACE_FIELDS },
    exitCodes: { ...EXIT_CODES },
    answerCue: ANSWER_CUE,
    answerLetters: [...ANSWER_LETTERS],
    configFields: { types: { ...CONFIG_FIELD_TYPES }, defaults: { ...CONFIG_DEFAULTS }, aliases: { ...CONFIG_ALIASES } },
  };
}

/** The file's exact text: the test compares bytes, so a hand edit fails as surely as a stale file. */
export function protocolNamesJson(): string {
  return JSON.stringify(protocolNames(), null, 2) + '\n';
}
