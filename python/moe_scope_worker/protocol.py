"""The protocol's names on the Python side. src/shared/protocol.ts is the source of truth: its names are
generated into protocol_names.json (`node scripts/protocol-names.mjs`), which this module reads, and
test/unit/pytorch-protocol.test.ts fails when that file is stale. Only what is the worker's own choice
(which methods it serves, which families it runs) is written here, and tests check it against the file."""
from __future__ import annotations

import json
import os

with open(os.path.join(os.path.dirname(__file__), "protocol_names.json"), encoding="utf-8") as _f:
    NAMES = json.load(_f)

# EngineMethods
METHODS = tuple(NAMES["methods"])
# Methods this worker serves; the rest answer with a clear 'bad-input' error.
SERVED_METHODS = ("load", "tokenize", "trace", "score", "shutdown")
# EngineErrorCode
ERROR_CODES = tuple(NAMES["errorCodes"])
# HostToEngine['type'] and EngineToHost['type']
HOST_TO_ENGINE_TYPES = tuple(NAMES["hostToEngineTypes"])
ENGINE_TO_HOST_TYPES = tuple(NAMES["engineToHostTypes"])
# ScoreParams.routingPositions
ROUTING_POSITIONS = tuple(NAMES["routingPositions"])
# ModelInfo's keys, each 'required' or 'optional'
MODEL_INFO_FIELDS: dict[str, str] = NAMES["modelInfoFields"]
# The keys of this worker's tokenize and trace results (WorkerTokenizeResult, WorkerTraceResult)
WORKER_TOKENIZE_FIELDS: dict[str, str] = NAMES["workerTokenizeFields"]
WORKER_TRACE_FIELDS: dict[str, str] = NAMES["workerTraceFields"]
# Every MoE family transformers implements (MOE_FAMILIES)
MOE_FAMILIES = tuple(NAMES["families"])
# The families this worker runs: every one transformers implements
FAMILIES = MOE_FAMILIES
# The command line's exit status for a run folder another live process holds
EXIT_LOCKED: int = NAMES["exitCodes"]["locked"]
# The text an MMLU prompt ends with, and the letters that follow it after a space (ANSWER_CUE, ANSWER_LETTERS)
ANSWER_CUE: str = NAMES["answerCue"]
ANSWER_LETTERS = tuple(NAMES["answerLetters"])


class EngineFailure(Exception):
    """An error with a protocol error code; its message reaches the user as is."""

    def __init__(self, code: str, message: str):
        assert code in ERROR_CODES, code
        super().__init__(message)
        self.code = code
