"""One loaded checkpoint on one torch device: load, tokenize, trace and batch scoring with a reused
prefix KV cache. Everything returned is protocol data (see src/shared/protocol.ts); typed arrays are
numpy arrays or framing.View slices of one shared array per batch."""
from __future__ import annotations

import os
import time
import traceback
from typing import Callable

import numpy as np
import torch

from . import checkpoint
from .framing import View
from .protocol import ROUTING_POSITIONS, EngineFailure
from .capture import RoutingCapture
from .routing import log_softmax_at, routing_from_observed
from .tokenizer import WorkerTokenizer
from .interventions import RouterInterventions
from .weight_check import check_loading_info

Log = Callable[[str, str], None]
# Headroom over the weights for activations, KV caches and the allocator.
MEMORY_MARGIN = 1.15
# Key/value positions one scoring forward may hold (batch rows x (prefix + item)); larger batches are split.
# Hybrid stacks (Mamba, linear attention, convolutions) keep caches that are not plain per-layer keys and
# values: a shared prefix is recomputed with each item instead of copied from a cache. (Sliding-window and
# chunked-attention caches are found at load, Engine._probe.)
PREFIX_RECOMPUTED = ("qwen3_next", "qwen3_5_moe", "granitemoehybrid", "minimax", "jamba", "lfm2_moe", "kimi_linear")
# On the CPU a fixed number; on a GPU sized by tokens from the memory left after loading (score_positions).
KV_POSITIONS_PER_FORWARD = int(os.environ.get("MOE_SCOPE_KV_POSITIONS", 65536))
# Share of the free device memory one scoring forward may use for its positions.
GPU_FORWARD_MEMORY_SHARE = 0.5


def score_positions(device: torch.device, config: dict, dtype: torch.dtype) -> int:
    """Positions (batch rows x (prefix + item)) one scoring forward holds: fixed on the CPU; on a GPU what
    half the free memory after loading holds, at the keys and values plus a generous allowance for the
    activations, router logits and expert buffers of each position (MOE_SCOPE_KV_POSITIONS overrides)."""
    if "MOE_SCOPE_KV_POSITIONS" in os.environ or device.type != "cuda":
        return KV_POSITIONS_PER_FORWARD
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    layers = int(text.get("num_hidden_layers", 1))
    hidden = int(text.get("hidden_size", 1))
    heads = int(text.get("num_attention_heads", 1))
    kv_heads = int(text.get("num_key_value_heads", heads) or heads)
    head_dim = int(text.get("head_dim") or hidden // max(heads, 1))
    experts = int(text.get("num_experts") or text.get("num_local_experts") or 1)
    element = torch.tensor([], dtype=dtype).element_size()
    per_position = 2 * layers * kv_heads * head_dim * element + 16 * hidden * element + 4 * layers * experts
    free, _total = torch.cuda.mem_get_info(device)
    return max(4096, min(1 << 21, int(free * GPU_FORWARD_MEMORY_SHARE) // per_position))


class Cancelled(Exception):
    pass


def pick_device(setting: str) -> torch.device:
    if setting == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    if setting == "cuda":
        raise EngineFailure("bad-input", "executionProvider 'cuda' was asked for, but this PyTorch sees no CUDA device "
                            f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'})")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{device.index} {torch.cuda.get_device_name(device)}"
    return device.type


class Engine:
    def __init__(self, log: Log):
        self.log = log
        self.model = None
        self.tokenizer: WorkerTokenizer | None = None
        self.info: dict | None = None
        self.rule: dict | None = None
        self.device = torch.device("cpu")
        self.prefix: dict | None = None
        self.cancel_check: Callable[[], bool] = lambda: False
        dump = os.environ.get("MOE_SCOPE_BENCH_DUMP_PROMPTS")
        # The GPU benchmark's plain-loop baseline replays exactly the prompts the engine scored.
        self.dump = open(dump, "ab") if dump else None
        # The GPU benchmark's share of the run outside the forward pass: seconds inside scoring forwards
        # (CUDA events, read at the batch's one synchronisation, so timing adds no host sync).
        self.time_forward = bool(os.environ.get("MOE_SCOPE_BENCH_STATS"))
        self.forward_seconds = 0.0
        self._forward_events: list = []

    # -- load ---------------------------------------------------------------------------------
    def load(self, model_path: str, options: dict) -> dict:
        t0 = time.time()
        if not isinstance(model_path, str) or not model_path:
            raise EngineFailure("bad-input", "load: modelPath must be a non-empty string")
        model_dir = checkpoint.resolve_model_dir(model_path)
        config_file = os.path.join(model_dir, "config.json")
        config = checkpoint.read_config(model_dir)
        hf_config = checkpoint.load_config(model_dir, config)
        rule = checkpoint.routing_rule(hf_config, config_file)
        tokenizer = WorkerTokenizer(model_dir)
        answer_scoring = tokenizer.answer_scoring()
        if answer_scoring["method"] != "single-token":
            # Refused rather than scored differently from the ONNX Runtime engine.
            raise EngineFailure(
                "bad-model",
                f"{model_dir}: the answer letters are several tokens in this tokenizer "
                f"({answer_scoring['letterTokenIds']}); the PyTorch engine scores single-token letters only: "
                "use the ONNX Runtime engine (--engine onnxruntime), which scores each letter's full continuation",
            )
        answer_ids = [ids[0] for ids in answer_scoring["letterTokenIds"]]
        device = pick_device((options or {}).get("executionProvider", "auto"))
        precision_wanted = (options or {}).get("precision") or "auto"
        if precision_wanted not in PRECISIONS:
            raise EngineFailure(
                "bad-input",
                f"precision {precision_wanted} cannot run in the PyTorch engine, which runs {', '.join(PRECISIONS[1:])}; "
                "int8 and int4 run in the ONNX Runtime engine on the CPU (--engine onnxruntime --provider cpu)",
            )
        if (self.model is not None and self.info and self.info["path"] == model_dir and self.device == device
                and precision_wanted in ("auto", self.info.get("precision"))):
            return self.info  # already loaded here (a client reloading after a reconnect, an evaluation after a trace)
        elements = checkpoint.weight_elements(model_dir)
        free, how = checkpoint.available_memory(device)
        dtype, precision, precision_why = choose_precision(precision_wanted, device, elements, free, how, model_dir)
        self.unload()
        self.log("info", f"loading {model_dir} ({elements / 1e9:.2f} B parameters) as {str(dtype)[6:]} on {describe_device(device)}")
        from transformers import AutoModelForCausalLM

        kwargs = dict(local_files_only=True, low_cpu_mem_usage=True)
        try:
            model, loading_info = self._from_pretrained(AutoModelForCausalLM, model_dir, dtype, device, kwargs)
        except (EngineFailure, torch.cuda.OutOfMemoryError):
            raise
        except Exception as e:  # one line for the user, whatever transformers raised (the traceback goes to the log)
            self.log("warn", "".join(traceback.format_exception(e)).strip())
            first = (str(e).strip().splitlines() or [""])[0][:500]
            raise EngineFailure("bad-model", f"{model_dir}: transformers could not load it: {type(e).__name__}: {first}") from e
        check_loading_info(model_dir, loading_info)
        model.eval()
        self.log("info", f"weights loaded in {time.time() - t0:.1f} s")
        self.capture = RoutingCapture(model, rule["family"], hf_config.get_text_config(), rule["routing"])
        self._install_cancel_hooks(self.capture.decoder_layers)
        self.model, self.tokenizer, self.rule, self.device = model, tokenizer, rule, device
        self._probe(rule)
        self.interventions = RouterInterventions(self.capture, rule["numExperts"], rule["topK"])
        self.positions_per_forward = score_positions(device, config, dtype)
        # Logged, not in the model info: it follows the free memory, and a run's manifest must not.
        self.log("info", f"scoring forwards hold up to {self.positions_per_forward} positions on {describe_device(device)}")
        self.answer_ids = answer_ids
        demo = config.get("moe_scope_demo")
        self.info = {
            "path": model_dir,
            "family": rule["family"],
            "modelType": rule["modelType"],
            "numLayers": rule["numLayers"],
            "numExperts": rule["numExperts"],
            "topK": rule["topK"],
            "hiddenSize": rule["hiddenSize"],
            "vocabSize": rule["vocabSize"],
            "maxPositions": rule["maxPositions"],
            "normTopKProb": rule["normTopKProb"],
            "sharedExperts": rule["sharedExperts"],
            "moeLayers": self.capture.moe_layers,
            "numDecoderLayers": len(self.capture.decoder_layers),
            "routing": rule["routing"],
            "executionProvider": device.type,
            "dtype": str(dtype).replace("torch.", ""),
            "precision": precision,
            "precisionWhy": precision_why,
            "answerScoring": answer_scoring,
            "loadMs": int((time.time() - t0) * 1000),
            "engine": "pytorch",
            "device": describe_device(device),
            # What transformers runs the experts with (e.g. grouped_mm, batched_mm, eager): kernels differ in numerics.
            "expertsImplementation": str(getattr(model.config, "_experts_implementation", None) or "eager"),
        }
        if isinstance(demo, str):
            self.info["demo"] = {"note": demo, **({"trained": True} if config.get("moe_scope_demo_trained") is True else {})}
        return self.info

    def _probe(self, rule: dict) -> None:
        """One forward of two tokens: the experts per layer and the k the model chooses, as observed (the
        config's field names differ per family; what the experts receive does not)."""
        with torch.inference_mode():
            self.capture.begin()
            out = self._decoder(self.model)(input_ids=torch.tensor([[0, 1]], device=self.device), use_cache=True)
            index, _, logits = self.capture.end()
        # A prefix cache is copied per batch row only when every layer keeps plain keys and values: sliding
        # windows, linear attention, Mamba and convolution states are recomputed with each item instead.
        layers = getattr(out.past_key_values, "layers", None)
        self.prefix_cache_plain = bool(layers) and all(type(layer).__name__ == "DynamicLayer" for layer in layers)
        rule["numLayers"] = len(self.capture.rows)
        rule["numExperts"] = int(logits.shape[-1])
        rule["topK"] = int(index.shape[-1])

    def _from_pretrained(self, auto, model_dir, dtype, device, kwargs):
        """Straight onto the device when accelerate is there (device_map), else through host memory."""
        try:
            import accelerate  # noqa: F401

            placement = {"device_map": str(device)} if device.type != "cpu" else {}
        except ImportError:
            placement = {}
        # The loading report says which tensors came from the files (weight_check.py); mis-shaped ones are
        # listed there too (instead of a "see the report above" error) and refused by name.
        kwargs = {**kwargs, "ignore_mismatched_sizes": True}
        try:
            model, info = auto.from_pretrained(model_dir, dtype=dtype, output_loading_info=True, **placement, **kwargs)
        except TypeError:  # transformers 4.x spells it torch_dtype
            model, info = auto.from_pretrained(model_dir, torch_dtype=dtype, output_loading_info=True, **placement, **kwargs)
        return (model if placement else model.to(device)), info

    def _install_cancel_hooks(self, layers) -> None:
        """A cancel takes effect between decoder layers, not only between requests."""

        def check(_module, _args):
            if self.cancel_check():
                raise Cancelled()

        for layer in layers:
            layer.register_forward_pre_hook(check)

    @staticmethod
    def _decoder(model):
        """The decoder without its LM head (whose forward returns last_hidden_state)."""
        base = getattr(model, model.base_model_prefix, None)
        if not isinstance(base, torch.nn.Module):
            base = getattr(model, "model", None)
        if base is None:
            raise EngineFailure("bad-model", f"{type(model).__name__}: no decoder ({model.base_model_prefix}) to run without the LM head")
        return base

    def unload(self) -> None:
        self.model = None
        self.prefix = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def require(self):
        if self.model is None:
            raise EngineFailure("not-loaded", "no model is loaded")
        return self.model

    # -- tokenize -----------------------------------------------------------------------------
    def tokenize(self, texts) -> dict:
        self.require()
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise EngineFailure("bad-input", "tokenize: texts must be an array of strings")
        ids, offsets, counts, inserted = self.tokenizer.encode_batch(texts)
        return {"ids": ids, "offsets": offsets, "counts": counts, "inserted": inserted}

    # -- forward ------------------------------------------------------------------------------
    def _check_ids(self, ids, what: str, offset: int = 0) -> list[int]:
        vocab = self.rule["vocabSize"]
        if not isinstance(ids, (list, np.ndarray)) or any(not isinstance(i, (int, np.integer)) or isinstance(i, bool) or i < 0 or i >= vocab for i in ids):
            bad = next((i for i in ids if not isinstance(i, (int, np.integer)) or i < 0 or i >= vocab), ids) if isinstance(ids, list) else ids
            raise EngineFailure("bad-input", f"{what}: token id {bad!r} is outside the vocabulary (0..{vocab - 1})")
        if offset + len(ids) > self.rule["maxPositions"]:
            raise EngineFailure("bad-input", f"{what}: {offset + len(ids)} tokens exceed the model's context of {self.rule['maxPositions']} positions")
        return [int(i) for i in ids]

    def _forward(self, batch: list[list[int]], past, prefix_len: int, want_cache: bool, pad_to: int = 0):
        """Right-padded batch after an optional shared cache of prefix_len positions. Returns the final
        hidden states [B,S,H], the routing observed (experts [L,B*S,K], applied weights [L,B*S,K], router
        logits [L,B*S,E]; capture.py) and the new cache."""
        B = len(batch)
        S = max(pad_to, max(len(r) for r in batch))
        ids = torch.zeros((B, S), dtype=torch.long)
        mask = torch.zeros((B, prefix_len + S), dtype=torch.long)
        mask[:, :prefix_len] = 1
        for b, row in enumerate(batch):
            ids[b, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[b, prefix_len : prefix_len + len(row)] = 1
        if self.device.type == "cuda":
            ids, mask = ids.pin_memory().to(self.device, non_blocking=True), mask.pin_memory().to(self.device, non_blocking=True)
        else:
            ids, mask = ids.to(self.device), mask.to(self.device)
        self.capture.begin()
        out = self._decoder(self.model)(input_ids=ids, attention_mask=mask, past_key_values=past, use_cache=want_cache)
        return out.last_hidden_state, self.capture.end(), out.past_key_values if want_cache else None

    def _routing(self, router, want_probs: bool = False, select=None):
        index, weights, logits = router
        if select is not None:
            index, weights, logits = index[:, select], weights[:, select], logits[:, select]
        return routing_from_observed(index, weights, logits, self.rule["routing"]["scoreFunction"], want_probs)

    def _answer_log_probs(self, hidden_rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model.get_output_embeddings()(hidden_rows)
        if self.rule["logitsScale"] != 1.0:
            logits = logits * self.rule["logitsScale"]
        return log_softmax_at(logits, self.answer_ids), logits

    # -- trace --------------------------------------------------------------------------------
    def trace(self, params: dict) -> dict:
        t0 = time.time()
        self.require()
        inp = params.get("input") or {}
        options = params.get("options") or {}
        text = inp.get("text") if isinstance(inp, dict) else None
        if isinstance(text, str):
            ids_np, offsets, _, inserted = self.tokenizer.encode_batch([text])
            ids = ids_np.tolist()
        elif isinstance(inp, dict) and isinstance(inp.get("ids"), list):
            ids = self._check_ids(inp["ids"], "trace")
            offsets, inserted, text = None, [], None
        else:
            raise EngineFailure("bad-input", "trace: input must be {text: string} or {ids: number[]}")
        if not ids:
            raise EngineFailure("bad-input", "nothing to trace: the text encodes to no tokens")
        if options.get("allExperts"):
            raise EngineFailure("bad-input", "the all-experts analysis runs in the ONNX Runtime engine; set moeScope.engine to onnxruntime for it")
        ids = self._check_ids(ids, "trace")
        self.interventions.set(options.get("intervention"))
        with torch.inference_mode():
            hidden, router, _ = self._forward([ids], None, 0, False)
            logp, logits = self._answer_log_probs(hidden[0, -1:])
            probs, top_e, top_w, ent = self._routing(router, bool(options.get("includeProbs")))
        routing = self._routing_dict(len(ids), top_e.cpu().numpy(), top_w.cpu().numpy(), ent.cpu().numpy(), None if probs is None else probs.cpu().numpy())
        lp = [float(x) for x in logp[0].cpu()]
        self._check_finite(lp, "trace")
        result = {
            "model": self.info,
            "ids": np.asarray(ids, dtype=np.int32),
            "routing": routing,
            "answerLogProbs": lp,
            "ms": int((time.time() - t0) * 1000),
        }
        if offsets is not None:
            result["offsets"] = offsets
            result["inserted"] = inserted
        else:
            result["tokenTexts"] = [self.tokenizer.decode_one(i) for i in ids]
        if options.get("includeLastLogits"):
            result["lastLogits"] = logits[0, : self.rule["vocabSize"]].float().cpu().numpy()
        return result

    def _routing_dict(self, T, top_e, top_w, ent, probs) -> dict:
        r = {
            "numLayers": int(top_e.shape[0]),
            "numTokens": T,
            "numExperts": self.rule["numExperts"],
            "topK": self.rule["topK"],
            "topExperts": top_e.astype(np.uint16),
            "topWeights": top_w.astype(np.float32),
            "entropy": ent.astype(np.float32),
        }
        if probs is not None:
            r["probs"] = probs.astype(np.float32)
        return r

    @staticmethod
    def _check_finite(values: list[float], what: str) -> None:
        if not all(np.isfinite(values)):
            raise EngineFailure("non-finite", f"{what}: the model produced non-finite answer log-probabilities {values} (NaN/inf in the forward pass)")

    # -- score --------------------------------------------------------------------------------
    def score(self, params: dict) -> dict:
        t0 = time.time()
        self.require()
        items = params.get("items")
        if not isinstance(items, list):
            raise EngineFailure("bad-input", "score: items must be an array")
        positions = params.get("routingPositions", "all")
        if positions not in ROUTING_POSITIONS:
            raise EngineFailure("bad-input", f"score: routingPositions must be one of {', '.join(ROUTING_POSITIONS)}, not {positions!r}")
        if not items:
            return {"items": [], "computedTokens": 0, "paddingTokens": 0, "prefixReused": False, "ms": 0}
        L, K = self.rule["numLayers"], self.rule["topK"]
        computed = 0
        reused = False
        prefix = None
        pspec = params.get("prefix")
        # A prefix's keys and values depend on the routing: reuse them only under the same intervention.
        iv_key = self.interventions.set(params.get("intervention"))
        with torch.inference_mode():
            inline = None
            if pspec and pspec.get("ids") and not self._prefix_cache_works():
                # Hybrid stacks (Mamba, linear attention, convolutions) and MLA keep caches this engine does not
                # copy per row: each item runs with its prefix, and the prefix's routing comes from that run.
                inline = self._check_ids(pspec["ids"], "score prefix")
            elif pspec and pspec.get("ids"):
                pids = self._check_ids(pspec["ids"], "score prefix")
                if self.prefix and self.prefix["key"] == pspec.get("key") and self.prefix["ids"] == pids and self.prefix["intervention"] == iv_key:
                    prefix, reused = self.prefix, True
                else:
                    self.prefix = None
                    hidden, router, cache = self._timed(lambda: self._forward([pids], None, 0, True))
                    computed += len(pids)
                    _, e, w, h = self._routing(router)
                    prefix = {"key": pspec.get("key"), "ids": pids, "intervention": iv_key, "kv": _cache_layers(cache), "routing": (e.cpu().numpy(), w.cpu().numpy(), h.cpu().numpy())}
                    self.prefix = prefix
            P = len(prefix["ids"]) if prefix else len(inline) if inline else 0
            rows_ids = []
            for it in items:
                if not isinstance(it, dict) or not isinstance(it.get("ids"), list) or not it["ids"]:
                    raise EngineFailure("bad-input", f"score: item {it.get('key') if isinstance(it, dict) else it!r} has no tokens after the prefix")
                rows_ids.append(self._check_ids(it["ids"], f"score item {it.get('key')}", P))
            if self.cancel_check():
                raise Cancelled()
            B = len(rows_ids)
            S = max(len(r) for r in rows_ids)
            computed += B * S
            if inline:
                computed += B * P
                parts = [self._score_rows([inline + r for r in chunk], None, 0, P + S, positions, K, skip=P) for chunk in self._chunks(rows_ids, 0, P + S)]
            else:
                parts = [self._score_rows(chunk, prefix, P, S, positions, K) for chunk in self._chunks(rows_ids, P, S)]
            # Every piece stays on the device; the batch's outputs come to the host in one copy.
            e, w, h = (torch.cat([p[i] for p in parts], dim=1) for i in range(3))
            logp = torch.cat([p[3] for p in parts])
            e, w, h, logp = self._to_host(e, w, h, logp)
        if self.dump:
            for r in rows_ids:
                full = np.asarray((prefix["ids"] if prefix else []) + r, dtype=np.int32)
                self.dump.write(np.int32(len(full)).tobytes() + full.tobytes())
            self.dump.flush()
        if not np.isfinite(logp).all():
            self._check_finite(logp.reshape(-1).tolist(), "score")
        return {
            "items": self._item_routings(items, rows_ids, positions, prefix, e, w, h, logp, L, K, inline=len(inline) if inline else 0),
            "computedTokens": computed,
            "paddingTokens": B * S - sum(len(r) for r in rows_ids),
            "prefixReused": reused,
            "ms": int((time.time() - t0) * 1000),
        }

    def _chunks(self, rows, P: int, S: int):
        """The batch in pieces whose keys and values (prefix copies included) stay within a fixed number
        of positions, so a subject with long prompts cannot exhaust the device's memory."""
        per = max(1, getattr(self, "positions_per_forward", KV_POSITIONS_PER_FORWARD) // (P + S))
        return [rows[i : i + per] for i in range(0, len(rows), per)]

    def _prefix_cache_works(self) -> bool:
        """Whether the prefix's keys and values can be copied per batch row: plain attention caches only."""
        return self.prefix_cache_plain and self.rule["family"] not in PREFIX_RECOMPUTED

    def _score_rows(self, rows, prefix, P: int, S: int, positions: str, K: int, skip: int = 0):
        """One forward of right-padded rows (all padded to S, as the batch is) after the prefix cache:
        routing of the positions asked for, [L, R, K] / [L, R], and answer log-probs [B, 4], on the host."""
        B = len(rows)
        past = _batch_cache(prefix["kv"], B) if prefix else None
        hidden, router, _ = self._timed(lambda: self._forward(rows, past, P, False, pad_to=S))
        # Row indices are built on the host from the known lengths: nothing waits for the device here.
        lens = [len(r) for r in rows]
        last_rows = [b * S + n - 1 for b, n in enumerate(lens)]
        last = torch.tensor(last_rows, device=self.device)
        logp, _ = self._answer_log_probs(hidden.reshape(B * S, -1)[last])
        if positions == "last":
            sel = last
        else:
            first = skip if positions == "item" else 0
            sel = torch.tensor([b * S + t for b, n in enumerate(lens) for t in range(first, n)], device=self.device)
        _, e, w, h = self._routing(router, select=sel)
        return e, w, h, logp

    def _timed(self, forward):
        if not self.time_forward:
            return forward()
        if self.device.type != "cuda":
            t0 = time.perf_counter()
            out = forward()
            self.forward_seconds += time.perf_counter() - t0
            return out
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        out = forward()
        end.record()
        self._forward_events.append((start, end))
        return out

    def _to_host(self, e: torch.Tensor, w: torch.Tensor, h: torch.Tensor, logp: torch.Tensor):
        """The batch's routing and answer log-probs as numpy arrays. On a GPU: packed into one float32
        buffer (expert ids bit-cast, log-probs are float32 values there), copied once into pinned host
        memory, one synchronisation. On the CPU the tensors already are host memory."""
        if self.device.type != "cuda":
            return e.numpy(), w.numpy(), h.numpy(), logp.numpy()
        flat, shapes = pack_outputs(e, w, h, logp)
        host = torch.empty(flat.shape, dtype=torch.float32, pin_memory=True)
        host.copy_(flat, non_blocking=True)
        torch.cuda.current_stream(self.device).synchronize()
        self.forward_seconds += sum(a.elapsed_time(b) for a, b in self._forward_events) / 1000
        self._forward_events.clear()
        return unpack_outputs(host.numpy(), shapes)

    def _item_routings(self, items, rows_ids, positions, prefix, e, w, h, logp, L, K, inline: int = 0):
        """One flat array per field for the whole batch, item-major, each item [layers][tokens][slot];
        every item's routing is a View into them."""
        pieces_e, pieces_w, pieces_h, spans = [], [], [], []
        t = 0
        P = len(prefix["ids"]) if prefix else inline
        for b, r in enumerate(rows_ids):
            n = 1 if positions == "last" else len(r) + (inline if positions == "all" else 0)
            ie, iw, ih = e[:, t : t + n], w[:, t : t + n], h[:, t : t + n]
            t += n
            start = P + len(r) - 1 if positions == "last" else (P if positions == "item" else 0)
            if positions == "all" and prefix:
                pe, pw, ph = prefix["routing"]
                ie, iw, ih = np.concatenate([pe, ie], 1), np.concatenate([pw, iw], 1), np.concatenate([ph, ih], 1)
            pieces_e.append(ie.reshape(-1))
            pieces_w.append(iw.reshape(-1))
            pieces_h.append(ih.reshape(-1))
            spans.append((start, ie.shape[1]))
        all_e = np.concatenate(pieces_e).astype(np.uint16)
        all_w = np.concatenate(pieces_w).astype(np.float32)
        all_h = np.concatenate(pieces_h).astype(np.float32)
        out = []
        oe = oh = 0
        for b, (start, T) in enumerate(spans):
            routing = {
                "numLayers": L,
                "numTokens": T,
                "numExperts": self.rule["numExperts"],
                "topK": K,
                "topExperts": View(all_e, oe, L * T * K),
                "topWeights": View(all_w, oe, L * T * K),
                "entropy": View(all_h, oh, L * T),
            }
            oe += L * T * K
            oh += L * T
            out.append({"key": items[b].get("key"), "answerLogProbs": [float(x) for x in logp[b]], "routing": routing, "routingStart": start, "promptTokens": P + len(rows_ids[b])})
        return out


def pack_outputs(e: torch.Tensor, w: torch.Tensor, h: torch.Tensor, logp: torch.Tensor):
    """One flat float32 tensor of a batch's outputs (expert ids int32 bit-cast; the log-probs are float32
    values on a GPU, see log_softmax_at), and the shapes to take it apart again."""
    shapes = [tuple(e.shape), tuple(w.shape), tuple(h.shape), tuple(logp.shape)]
    flat = torch.cat([e.to(torch.int32).contiguous().view(torch.float32).reshape(-1), w.float().reshape(-1), h.float().reshape(-1), logp.float().reshape(-1)])
    return flat, shapes


def unpack_outputs(host: np.ndarray, shapes):
    """Inverse of pack_outputs over the host copy: expert ids int32, weights and entropy float32, log-probs float64."""
    out, at = [], 0
    for i, shape in enumerate(shapes):
        n = int(np.prod(shape))
        a = host[at : at + n].reshape(shape)
        out.append(a.view(np.int32) if i == 0 else a.astype(np.float64) if i == 3 else a)
        at += n
    return tuple(out)


def _cache_layers(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(keys, values) per layer, [1, heads, P, dim], from a DynamicCache of any transformers version."""
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    if hasattr(cache, "key_cache"):
        return list(zip(cache.key_cache, cache.value_cache))
    return [(k, v) for k, v in cache]


def _batch_cache(layers, batch: int):
    """A fresh cache holding the prefix once per batch row (the model appends to it in place)."""
    from transformers import DynamicCache

    cache = DynamicCache()
    for i, (k, v) in enumerate(layers):
        cache.update(k.expand(batch, -1, -1, -1).contiguous(), v.expand(batch, -1, -1, -1).contiguous(), i)
    return cache


PRECISIONS = ("auto", "fp32", "bf16")


def choose_precision(wanted, device, elements, free, how, model_dir):
    """fp32 or bf16 (on every device, the CPU included). auto: bf16 on a GPU; on the CPU fp32 when it fits
    the memory, else bf16. A precision that does not fit is refused before loading, naming one that would."""
    def need(dt):
        return int(elements * torch.tensor([], dtype=dt).element_size() * MEMORY_MARGIN)

    half = torch.bfloat16
    if device.type == "mps" and not torch.backends.mps.is_macos13_or_newer():
        half = torch.float16  # older macOS has no bfloat16 on MPS
    names = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
    gib = lambda n: f"{n / 2**30:.1f} GiB"  # noqa: E731
    if wanted == "auto":
        if device.type != "cpu":
            dtype, why = half, f"auto: {names[half]} on {describe_device(device)}"
        elif need(torch.float32) <= free:
            dtype, why = torch.float32, f"auto: fp32 fits (about {gib(need(torch.float32))}, {gib(free)} {how})"
        else:
            dtype, why = half, f"auto: fp32 needs about {gib(need(torch.float32))}, {gib(free)} {how}; {names[half]} (about {gib(need(half))})"
    else:
        dtype, why = (torch.float32 if wanted == "fp32" else half), "requested"
    if need(dtype) > free:
        smaller = half if dtype == torch.float32 and need(half) <= free else None
        # On a GPU the host can offer the CPU instead ('provider-unavailable'); on the CPU there is nowhere else.
        raise EngineFailure(
            "bad-model" if device.type == "cpu" else "provider-unavailable",
            f"{model_dir}: the model needs about {gib(need(dtype))} in {str(dtype).replace('torch.', '')} on "
            f"{describe_device(device)} ({elements / 1e9:.2f} B parameters plus {round((MEMORY_MARGIN - 1) * 100)}% headroom), "
            f"but only {gib(free)} is {how}"
            + (f"; {names[half]} would fit: use --precision bf16" if smaller is not None
               # Nothing this engine runs fits: the ONNX Runtime engine's CPU provider holds the experts in 8 or 4 bits.
               else f"; no precision this engine runs fits ({', '.join(f'{names[d]} about {gib(need(d))}' for d in (torch.float32, half))}): "
               "int8 and int4 run in the ONNX Runtime engine on the CPU (--engine onnxruntime --provider cpu --precision int8), "
               "which says before loading whether they fit"),
        )
    return dtype, names[dtype], why
