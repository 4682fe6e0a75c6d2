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
    "maxPositions", "normTopKProb", "sharedExperts", "executionProvider", "providerNote", "dtype",
    "answerScoring", "demo", "loadMs", "engine", "device", "precision", "precisionWhy",
)
FAMILIES = ("olmoe", "mixtral", "qwen2_moe")


class EngineFailure(Exception):
    """An error with a protocol error code; its message reaches the user as is."""

    def __init__(self, code: str, message: str):
        assert code in ERROR_CODES, code
        super().__init__(message)
        self.code = code
