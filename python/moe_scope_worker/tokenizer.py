"""tokenizer.json through the `tokenizers` library, with UTF-16 offsets as the TypeScript side uses them."""
from __future__ import annotations

import os
from itertools import chain

import numpy as np

from .protocol import ANSWER_CUE, ANSWER_LETTERS, EngineFailure


def utf16_offsets(text: str, offsets: np.ndarray) -> np.ndarray:
    """Code-point offsets -> UTF-16 code-unit offsets (differ only after characters beyond U+FFFF)."""
    if len(text.encode("utf-16-le")) == 2 * len(text):
        return offsets
    extra = np.zeros(len(text) + 1, dtype=np.int32)
    np.cumsum([1 if ord(c) > 0xFFFF else 0 for c in text], out=extra[1:])
    return offsets + extra[offsets]


class WorkerTokenizer:
    def __init__(self, model_dir: str):
        from tokenizers import Tokenizer

        path = os.path.join(model_dir, "tokenizer.json")
        if not os.path.isfile(path):
            raise EngineFailure("bad-model", f"{path}: missing (the PyTorch engine reads the tokenizer from tokenizer.json)")
        try:
            self.tok = Tokenizer.from_file(path)
        except Exception as e:  # the library's message names the problem
            raise EngineFailure("bad-model", f"{path}: {e}") from e
        self.path = path
        self.special_ids = {i for i, t in self.tok.get_added_tokens_decoder().items() if t.special}
        self.special_id_array = np.array(sorted(self.special_ids), dtype=np.int32)

    def encode_batch(self, texts: list[str]):
        """Flat ids, flat [start, end) UTF-16 offsets, per-text counts, and [index, text] of the tokens that
        cover no source text (special tokens the post-processor inserted). Vectorised: a 5-shot MMLU pass
        tokenises ~14 M tokens, so nothing here may loop over tokens in Python."""
        encs = self.tok.encode_batch(texts, add_special_tokens=True)
        id_lists = [e.ids for e in encs]
        counts = np.fromiter(map(len, id_lists), dtype=np.int32, count=len(encs))
        total = int(counts.sum())
        ids = np.fromiter(chain.from_iterable(id_lists), dtype=np.int32, count=total)
        offsets = np.fromiter(chain.from_iterable(chain.from_iterable(e.offsets for e in encs)), dtype=np.int32, count=2 * total).reshape(total, 2)
        pos = 0
        for text, n in zip(texts, counts.tolist()):
            if n and not text.isascii():
                offsets[pos : pos + n] = utf16_offsets(text, offsets[pos : pos + n])
            pos += n
        inserted: list[list] = []
        if self.special_ids:
            empty = np.flatnonzero((offsets[:, 0] == offsets[:, 1]) & np.isin(ids, self.special_id_array))
            inserted = [[int(k), self.tok.id_to_token(int(ids[k]))] for k in empty]
        return ids, offsets.reshape(-1), counts, inserted

    def decode_one(self, token_id: int) -> str:
        return self.tok.decode([token_id], skip_special_tokens=False)

    def answer_scoring(self) -> dict:
        """As the TypeScript answerScoringOf() (formats/tokenizer/answerScoring.ts): each letter's ids after
        the cue "Answer:" (protocol.ts's ANSWER_CUE); test/integration/tokenizer-parity.test.ts compares them."""
        context = ANSWER_CUE
        base = self.tok.encode(context, add_special_tokens=False).ids
        letters = []
        for letter in ANSWER_LETTERS:
            with_letter = self.tok.encode(f"{context} {letter}", add_special_tokens=False).ids
            extra = with_letter[len(base) :]
            if with_letter[: len(base)] != base or not extra:
                raise EngineFailure(
                    "bad-model",
                    f'{self.path}: answer letter " {letter}" merges with "{context}" in this tokenizer '
                    f"({base} -> {with_letter}); its log-probability cannot be read after the prompt",
                )
            letters.append(extra)
        method = "single-token" if all(len(ids) == 1 for ids in letters) else "continuation"
        return {"method": method, "letterTokenIds": letters}
