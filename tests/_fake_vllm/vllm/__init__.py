"""A stand-in for the ``vllm`` package (0.32's API as tts_prune uses it) that records engine starts and shutdowns.

Put ``tests/_fake_vllm`` first on ``sys.path`` (or ``PYTHONPATH``, for a notebook kernel) and ``import vllm``
gets this module. ``LLM(model=path)`` logs a ``start``; ``llm.llm_engine.engine_core.shutdown()`` logs a
``shutdown``; ``vllm.distributed.parallel_state``'s destroy functions log themselves. Every event goes to
``EVENTS`` and, when the environment names a file in ``FAKE_VLLM_EVENTS``, to that JSONL file (a papermill
kernel is another process). ``LLM.alive`` counts engines started and not shut down.

``llm.llm_engine`` also speaks vLLM's step API (``add_request`` / ``step`` / ``has_unfinished_requests`` /
``abort_request``, ``model_config.max_model_len``) that continuous submission drives: each ``step`` finishes the
oldest few unfinished requests, with the same tokens ``generate`` would give them.

Generation needs no model: each request gets tokens drawn from a generator seeded by its prompt and seed
(deterministic across processes), a natural stop (its first stop id) before ``max_tokens`` for some requests
and a cut at ``max_tokens`` for the others, and never fewer than ``min_tokens``: enough to drive budget
forcing, grading and the results store through every path.
"""
from __future__ import annotations

import json
import os
import random
import sys
import time
import types
import zlib
from pathlib import Path

__version__ = "0.32.0+fake"
EVENTS: list[dict] = []


def log(event: str, **fields) -> None:
    entry = {"event": event, "pid": os.getpid(), "time": time.time(), **fields}
    EVENTS.append(entry)
    target = os.environ.get("FAKE_VLLM_EVENTS")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")


class SamplingParams:
    def __init__(self, max_tokens=16, temperature=1.0, top_p=1.0, top_k=-1, seed=None, min_tokens=0,
                 stop_token_ids=None, skip_special_tokens=True, **_):
        self.max_tokens, self.temperature, self.top_p, self.top_k = max_tokens, temperature, top_p, top_k
        self.seed, self.min_tokens, self.stop_token_ids = seed, min_tokens, list(stop_token_ids or [])


def TokensPrompt(prompt_token_ids):  # noqa: N802 - vLLM's name (a TypedDict there)
    return {"prompt_token_ids": list(prompt_token_ids)}


class _Core:
    def __init__(self, llm):
        self._llm = llm

    def shutdown(self, timeout=None):
        if self._llm.running:
            self._llm.running = False
            LLM.alive -= 1
            log("shutdown", model=self._llm.model)


class _Engine:
    """vLLM's ``LLMEngine`` step API over ``LLM._tokens``: FIFO, ``PER_STEP`` requests finish per step."""

    PER_STEP = 3

    def __init__(self, llm, max_model_len):
        self.engine_core, self._llm, self._queue = _Core(llm), llm, []
        self.model_config = types.SimpleNamespace(max_model_len=max_model_len)

    def add_request(self, request_id, prompt, params):
        assert self._llm.running, "add_request on an engine that was shut down"
        self._queue.append((request_id, prompt["prompt_token_ids"], params))

    def step(self):
        done, self._queue = self._queue[:self.PER_STEP], self._queue[self.PER_STEP:]
        return [types.SimpleNamespace(request_id=rid, finished=True,
                                      outputs=[types.SimpleNamespace(token_ids=self._llm._tokens(ids, p))])
                for rid, ids, p in done]

    def has_unfinished_requests(self):
        return bool(self._queue)

    def abort_request(self, request_ids):
        gone = set(request_ids)
        self._queue = [q for q in self._queue if q[0] not in gone]


class LLM:
    alive = 0

    def __init__(self, model, tokenizer=None, tensor_parallel_size=1, dtype="auto", seed=0, **options):
        self.model = str(model)
        config = json.loads((Path(model) / "config.json").read_text())
        self.vocab = config["vocab_size"]
        self.running = True
        self.llm_engine = _Engine(self, options.get("max_model_len") or config.get("max_position_embeddings", 2048))
        LLM.alive += 1
        log("start", model=self.model, tensor_parallel_size=tensor_parallel_size, dtype=dtype,
            options=sorted(options))

    def _tokens(self, ids, p):
        rng = random.Random(zlib.crc32(json.dumps([ids, p.seed]).encode()))
        limit = p.max_tokens or 64
        n = rng.randint(max(1, p.min_tokens), limit + limit // 2)  # past the limit: cut at max_tokens
        allowed = [t for t in range(self.vocab) if t not in p.stop_token_ids]
        tokens = [rng.choice(allowed) for _ in range(min(n, limit))]
        if n < limit and p.stop_token_ids:
            tokens.append(p.stop_token_ids[0])
        return tokens

    def generate(self, prompts, params, use_tqdm=True):
        assert self.running, "generate on an engine that was shut down"
        return [types.SimpleNamespace(outputs=[types.SimpleNamespace(token_ids=self._tokens(prompt["prompt_token_ids"], p))])
                for prompt, p in zip(prompts, params)]


def _module(name: str, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    sys.modules[name] = module
    return module


inputs = _module("vllm.inputs", TokensPrompt=TokensPrompt)
sampling_params = _module("vllm.sampling_params", SamplingParams=SamplingParams,
                          RequestOutputKind=types.SimpleNamespace(FINAL_ONLY="final_only", CUMULATIVE="cumulative"))
platforms = _module("vllm.platforms", current_platform=types.SimpleNamespace(is_cpu=lambda: True))
distributed = _module("vllm.distributed")
distributed.parallel_state = _module(
    "vllm.distributed.parallel_state",
    destroy_model_parallel=lambda: log("destroy_model_parallel"),
    destroy_distributed_environment=lambda: log("destroy_distributed_environment"))
