"""The Python side's copy of the protocol's names. src/shared/protocol.ts is the source of truth;
test/unit/pytorch-protocol.test.ts fails when these drift from it."""

# EngineMethods in protocol.ts
METHODS = ("load", "tokenize", "trace", "score", "analyzeWeights", "shutdown")
# Methods this worker serves; the rest answer with a clear 'bad-input' error.
SERVED_METHODS = ("load", "tokenize", "trace", "score", "shutdown")
# EngineErrorCode
ERROR_CODES = ("cancelled", "not-loaded", "bad-model", "bad-input", "process-died", "internal")
# HostToEngine['type'] and EngineToHost['type']
HOST_TO_ENGINE_TYPES = ("request", "cancel")
ENGINE_TO_HOST_TYPES = ("response", "log", "ready")
# ScoreParams.routingPositions
ROUTING_POSITIONS = ("all", "item", "last")
# Keys of ModelInfo this worker fills (optional ones included).
MODEL_INFO_KEYS = (
    "path", "family", "modelType", "numLayers", "numExperts", "topK", "hiddenSize", "vocabSize",
    "maxPositions", "normTopKProb", "sharedExperts", "moeLayers", "numDecoderLayers", "routing", "executionProvider", "providerNote", "dtype",
    "answerScoring", "demo", "loadMs", "engine", "device", "expertsImplementation", "precision", "precisionWhy",
)
# MOE_FAMILIES in protocol.ts: the MoE decoder families transformers implements, all run by this worker.
FAMILIES = (
    "olmoe", "flex_olmo", "mixtral", "qwen2_moe", "qwen3_moe", "qwen3_next", "qwen3_5_moe", "deepseek_v2", "deepseek_v3", "gpt_oss",
    "granitemoe", "granitemoeshared", "granitemoehybrid", "jetmoe", "phimoe", "dbrx", "llama4", "glm4_moe", "ernie4_5_moe",
    "hunyuan_v1_moe", "dots1", "minimax", "jamba", "lfm2_moe", "longcat_flash", "afmoe", "cohere2_moe", "exaone_moe", "mimo_v2_flash",
    "kimi_linear",
)


class EngineFailure(Exception):
    """An error with a protocol error code; its message reaches the user as is."""

    def __init__(self, code: str, message: str):
        assert code in ERROR_CODES, code
        super().__init__(message)
        self.code = code
