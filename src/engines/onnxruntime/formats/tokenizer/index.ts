// A Hugging Face tokenizer.json for the ONNX Runtime engine, in three parts: loading the files (load.ts),
// the tokenizer with its UTF-16 offsets (moeTokenizer.ts, alignment.ts), and how MMLU's answer letters
// are scored (answerScoring.ts).
export { BYTE_TO_UNICODE, type EncodedToken } from './alignment';
export { answerScoringOf } from './answerScoring';
export { loadTokenizer } from './load';
export {
  MoeTokenizer,
  TOKENIZER_CONFIG_FILE,
  TOKENIZER_FILE,
  TokenizerLoadError,
  type DecodeOptions,
  type EncodeOptions,
  type Encoded,
  type TokenByteScheme,
} from './moeTokenizer';
