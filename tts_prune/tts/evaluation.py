"""``evaluate``: a benchmark x budget sweep with budget forcing, graded, stored, returned as a tidy frame.

One record per request, written to an append-only store (``tts_prune.tts.results``). Generation streams:
each (problem, seed) trace's records are graded in a worker thread (math-verify itself runs in the grading
sandbox's process) while the engine goes on, and written as shards every ``flush_seconds``, so a rerun skips
what is done and a kill loses at most the requests in flight and the last ``flush_seconds`` of graded traces
(an exception from the engine flushes every trace already finished). A record's key is the whole request
(weights fingerprint, recipe, benchmark, problem, exact prompt, format, decoding, grading mode, backend,
seed, budget): a changed request is never served from the store. The backend (``tts_prune.tts.backends``)
is the transformers decode loop or vLLM; an in-memory model reaches vLLM as a saved artifact, so every
record's ``model_hash`` is the fingerprint of the weights that generated it.

What is graded depends on the grading protocol (``grading``; ``tts_prune.tts.regrade``): ``kit`` grades the
answer (after the forced or natural end of thinking) with the forced answer cue kept (s1's ``Final Answer:``,
which the model continued); a natural stop in a format without an end delimiter (``generic``: the model
answers in its own text) is graded whole, and a ``\\boxed`` inside thinking that the budget cut off earns
nothing unless ``grade_thinking=True`` asks for it. ``s1-harness`` grades the whole response by the rules of
the paper's harness (``tts_prune.tts.harness``), with an LLM ``judge`` where they ask one. With several
protocols the sweep generates once and grades each record under each; a request stored under another
grading is regraded from its stored texts, never generated again.
"""
from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
from tqdm.auto import tqdm

from .. import __version__
from .answer_budget import AUTO, resolve_answer_tokens
from .backends import pick_backend  # noqa: F401  (re-exported)
from .benchmarks import load_benchmark, resolve
from .engine import Engine, open_engine
from .formats import ThinkingFormat, answer_only, build_prompt, detect_format, get_format
from .generation import DecodingConfig, Generation, check_budgets
from .grading import DEFAULT_TIMEOUT_S, grade_answer
from .harness import judge_question
from .judge import JudgeConfig
from .regrade import fill_from_store, grading_spec, protocols_of, response_text
from .results import ResultStore, load_results, record_key  # noqa: F401  (load_results re-exported)
from .stream import Job, chunked_stream

DEFAULT_FLUSH_SECONDS = 10.0  # a kill loses at most this much graded work; an hour's run makes ~360 shards
COLUMNS = ["problem_id", "budget", "seed", "correct", "no_answer", "thinking_tokens", "capped", "answer_tokens",
           "answer_capped", "waits", "benchmark", "model", "recipe", "prediction"]


def grade(benchmark: str, response: str, gold: str, protocol: str = "kit", judge=None,
          question: str | None = None) -> bool:
    """Grade ``response`` against ``gold`` with ``benchmark``'s grader (math, numeric or letter) under ``protocol``
    (``kit`` or ``s1-harness``; for the latter ``response`` is the whole response and ``judge`` an optional
    ``JudgeConfig`` or dict; a GPQA judge also needs ``question``, ``harness.judge_question(problem)``)."""
    spec = resolve(benchmark)[0]
    return grade_answer(spec.grader, response, gold, protocol=protocol, judge=judge, benchmark=spec.name,
                        question=question).correct


def graded_text(g: Generation, fmt: ThinkingFormat, grade_thinking: bool = False, protocol: str = "kit") -> str:
    """The text a generation is graded on under ``protocol`` (see ``tts_prune.tts.regrade.response_text``)."""
    return response_text(g.thinking, g.forced, g.answer, g.capped, fmt, protocol, grade_thinking)


def _warn_past_context(prompts, tokenizer, budgets, config: DecodingConfig, model_config) -> None:
    """Warn when a prompt + the largest budget + the answer budget passes the model's trained context.

    The transformers backend keeps generating there (rotary positions extrapolate, quality does not); vLLM
    refuses such requests at its ``max_model_len``. Either way the user should lower the budgets or
    ``answer_tokens``, or know that the longest traces run past what the model was trained on."""
    context = getattr(model_config, "max_position_embeddings", None)
    if not context:
        return
    longest = max((len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts), default=0)
    answer = config.answer_tokens if config.answer_tokens is not None else 0  # max_gen_tokens: capped at the context
    need = longest + max(budgets) + answer + 4  # + the forced end of thinking
    if need > context:
        import warnings

        warnings.warn(f"the longest prompt ({longest} tokens) + budget {max(budgets)} + answer_tokens "
                      f"{config.answer_tokens} reach {need} positions, past the model's {context} "
                      f"(max_position_embeddings): traces that long run where it was never trained; lower the "
                      f"budgets or answer_tokens to stay inside", stacklevel=3)


def evaluate(model_or_path, benchmark: str, budgets, limit: int | None = None, samples: int = 1,
             seeds=None, temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0,
             answer_tokens: int | None | str = AUTO, waits: int = 0, min_thinking: int = 0,
             thinking_format=None, grade_thinking: bool = False, backend: str = "auto", batch_size: int = 8,
             recipe: dict | None = None, out=None, model_name: str | None = None, benchmark_seed: int = 0,
             tensor_parallel_size: int = 1, data_parallel_size: int = 1, model_dir=None,
             vllm_options: dict | None = None, grading_timeout_s: float = DEFAULT_TIMEOUT_S,
             grading="kit", judge=None, show_progress: bool = True, max_gen_tokens: int | None = None,
             flush_seconds: float = DEFAULT_FLUSH_SECONDS) -> pd.DataFrame:
    """Evaluate a model on ``benchmark`` at every thinking budget; one row per problem x budget x sample.

    ``model_or_path``: a loaded ``(model, tokenizer)`` pair or a reference for ``load_model`` (its backend is
    opened for this call and closed on the way out), or an open ``Engine`` (``tts_prune.open_engine``), which
    serves many calls (one per benchmark of a model variant) and stays open; its backend arguments (``backend``,
    ``batch_size``, ``tensor_parallel_size``, ``data_parallel_size``, ``model_dir``, ``vllm_options``) are
    then fixed by ``open_engine`` and may only be repeated here. The records are the same either way.
    ``seeds`` (explicit sample seeds) default to ``range(samples)``; greedy decoding uses one seed, 0.
    ``answer_tokens``: the answer's own budget (None: until a stop token; ``"auto"``: the model card's, else the
    thinking format's, else s1's thousands; see ``tts_prune.tts.answer_budget``). ``waits``/``min_thinking``: s1's
    extension and minimum-thinking modes. ``thinking_format``: a ``FORMATS`` name or a ``ThinkingFormat``
    (default: detected from the tokenizer and the model name). Budget 0 of a format with a no-thinking
    switch (Qwen3's ``enable_thinking=False``) is that no-thinking prompt, answered directly.
    ``recipe`` (a pruning recipe dict) is stored for provenance. ``out`` is the results folder
    (default ``paths.RESULTS_DIR``); finished records found there are reused, not regenerated.
    ``model_dir``: the directory 03-pruning saved this model to (vLLM loads it when its fingerprint
    matches instead of saving a copy). ``vllm_options`` go to ``vllm.LLM`` (e.g.
    ``{"gpu_memory_utilization": 0.3, "dtype": "float32"}``; on CPU a share of RAM; ``"max_in_flight"``: the
    unfinished requests kept in the engine, default ``stream.DEFAULT_MAX_IN_FLIGHT``).
    ``max_gen_tokens``: the answer allowance of s1's harness (32768 in the authors' runs; see ``DecodingConfig``);
    when set it replaces ``answer_tokens`` (ignored) and the answer stops at end of sequence only.
    ``flush_seconds``: graded records are written at least this often (0: every finished trace at once).
    ``grading``: a protocol (``kit``, ``s1-harness``) or a list of them, every record graded under each;
    ``judge``: the s1-harness judge, a ``JudgeConfig`` or ``{base_url, model, api_key_env}`` (None: the
    offline fallback, recorded as such); it is checked to answer before anything is generated.
    """
    if not isinstance(model_or_path, Engine):  # a model: an engine for this call only, closed however it ends
        call = dict(locals())  # the arguments (the first statement: nothing else is local yet)
        check_budgets(budgets), protocols_of(grading)  # cheap checks before an engine (a vLLM start) is opened
        with open_engine(model_or_path, backend, batch_size=batch_size, tensor_parallel_size=tensor_parallel_size,
                         data_parallel_size=data_parallel_size, model_dir=model_dir, vllm_options=vllm_options,
                         model_name=model_name) as session:
            return evaluate(**{**call, "model_or_path": session})
    engine = model_or_path.check(backend=backend, batch_size=batch_size, tensor_parallel_size=tensor_parallel_size,
                                 data_parallel_size=data_parallel_size, model_dir=model_dir, vllm_options=vllm_options)
    batch_size = model_or_path.options["batch_size"]
    budgets = check_budgets(budgets)
    protocols, judge = protocols_of(grading), JudgeConfig.from_dict(judge)
    if judge is not None and "s1-harness" in protocols:
        judge.check()  # a missing key or a dead endpoint fails now, not after hours of generation
    specs = [grading_spec(p, grade_thinking, judge) for p in protocols]
    if samples < 1:
        raise ValueError(f"samples={samples} must be >= 1")
    seeds = [int(s) for s in (seeds if seeds is not None else range(samples))]
    if temperature == 0:
        seeds = seeds[:1]  # greedy: every seed gives the same text
    name, model_config = model_name or model_or_path.name, model_or_path.model_config
    fmt = (get_format(thinking_format) if thinking_format is not None
           else detect_format(engine.tokenizer, name, model_config))
    if max_gen_tokens is not None:
        answer_tokens = None  # the harness's allowance replaces the answer's own budget
    answer_tokens, answer_source = resolve_answer_tokens(answer_tokens, fmt, name,
                                                         getattr(model_config, "_name_or_path", None))
    config = DecodingConfig(temperature=temperature, top_p=top_p, top_k=top_k, answer_tokens=answer_tokens,
                            waits=waits, min_thinking=min_thinking, batch_size=batch_size,
                            max_gen_tokens=max_gen_tokens)
    if flush_seconds < 0:
        raise ValueError(f"flush_seconds={flush_seconds} must be >= 0 (0 writes every finished trace at once)")
    spec, _ = resolve(benchmark)
    problems = load_benchmark(benchmark, limit, benchmark_seed)
    by_id = {p["id"]: p for p in problems}
    # The GPQA judge reads the question with its choices (the generation loop grades under the first protocol).
    asks = judge is not None and protocols[0] == "s1-harness" and spec.grader == "choice"
    questions = {p["id"]: judge_question(p) for p in problems} if asks else {}
    tokenizer = engine.tokenizer
    store = ResultStore(out)
    base = {"model": name, "model_hash": engine.fingerprint, "recipe": dict(recipe or {}), "benchmark": spec.name,
            "format": fmt.name, "format_spec": fmt.describe(), "decoding": config.describe(),
            "grading": specs[0], "backend": engine.name}
    provenance = {"package_version": __version__, "grading_timeout_s": grading_timeout_s}
    if answer_source is not None:  # resolved, not passed: say which budget and why (explicit calls' records unchanged)
        provenance.update(answer_budget=answer_tokens, answer_budget_source=answer_source)

    # (budgets, format, prompt builder) per group: thinking budgets, and Qwen3-style no-thinking budget 0.
    no_thinking = 0 in budgets and bool(fmt.no_thinking)
    groups = [([b for b in budgets if not (no_thinking and b == 0)], fmt, True)]
    if no_thinking:
        groups.append(([0], answer_only(fmt), False))
    done, wanted, jobs, requests = set(), set(), [], []
    for group_budgets, group_fmt, thinking in groups:
        if not group_budgets:
            continue
        prompts = {p["id"]: build_prompt(tokenizer, p["problem"], fmt, thinking=thinking) for p in problems}
        _warn_past_context(prompts.values(), tokenizer, group_budgets, config,
                           getattr(getattr(engine, "model", None), "config", None) or model_config)

        def key(problem, budget, seed, grading=specs[0]):
            return record_key({**base, "problem_id": problem["id"], "prompt": prompts[problem["id"]],
                               "budget": budget, "seed": seed, "grading": grading})

        group = [{**base, "problem_id": p["id"], "prompt": prompts[p["id"]], "budget": b, "seed": s}
                 for p in problems for s in seeds for b in group_budgets]
        requests += group
        wanted |= {key(p, b, s, g) for p in problems for s in seeds for b in group_budgets for g in specs}
        # Requests stored under another grading (or protocol) are graded again, not generated again.
        done |= fill_from_store(store, group, specs, spec.grader, fmt, by_id, grading_timeout_s, judge, provenance)[1]
        jobs += [Job(prompts[p["id"]], s, tuple(group_budgets), group_fmt, tag=p) for p in problems for s in seeds
                 if any(key(p, b, s) not in done for b in group_budgets)]

    def graded(job: Job, gens: list[Generation], seconds: float) -> list[dict]:
        problem, records = job.tag, []
        for g in gens:
            result = grade_answer(spec.grader, graded_text(g, job.fmt, grade_thinking, protocols[0]),
                                  problem["answer"], timeout_s=grading_timeout_s, protocol=protocols[0],
                                  judge=judge, benchmark=spec.name, question=questions.get(problem["id"]))
            records.append({**base, **provenance, "problem_id": problem["id"], "budget": g.budget, "seed": job.seed,
                            "correct": bool(result.correct), "no_answer": bool(result.no_answer),
                            "grading_timeout": bool(result.timeout), "prediction": result.prediction,
                            "graded_by": result.route,
                            "gold": problem["answer"], "prompt": job.prompt, "thinking": g.thinking,
                            "forced": g.forced, "answer": g.answer, "thinking_tokens": g.thinking_tokens,
                            "answer_tokens": g.answer_tokens, "capped": g.capped,
                            "answer_capped": g.answer_capped, "waits": g.waits, "batch_seconds": seconds,
                            "secret": spec.secret})
        # As a reader of the store sees them (JSON types, the key): this run's frame equals a rerun's.
        return [json.loads(json.dumps({**r, "key": record_key(r)}, default=str)) for r in records
                if record_key(r) not in done]

    bar = tqdm(total=sum(len(j.budgets) for j in jobs), desc=f"eval {spec.name}", disable=not show_progress)
    writer = _ShardWriter(store, flush_seconds)
    if jobs:
        source = engine.stream(jobs, config) if hasattr(engine, "stream") else chunked_stream(engine, jobs, config)
        _generate_and_grade(source, graded, writer, bar)
    bar.close()
    if len(specs) > 1 and jobs:  # the other protocols, from the generations just stored
        fill_from_store(store, requests, specs, spec.grader, fmt, by_id, grading_timeout_s, judge, provenance)
    frame = load_results(store.root, keys=wanted)  # only the shards that hold this call's records are parsed
    if frame.empty:
        return frame.reindex(columns=COLUMNS)
    frame = frame.drop_duplicates("key", keep="last")
    frame = frame[frame["key"].isin(wanted)].sort_values(["problem_id", "seed", "budget"]).reset_index(drop=True)
    return frame[COLUMNS + [c for c in frame.columns if c not in COLUMNS]]


class _ShardWriter:
    """Graded records buffered and written as one shard every ``flush_seconds`` (0: at once), by a timer thread,
    so finished records reach the disk even while the engine works on long requests."""

    def __init__(self, store: ResultStore, flush_seconds: float):
        self.store, self.flush_seconds = store, flush_seconds
        self.buffer: list[dict] = []
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._timer = threading.Thread(target=self._tick, daemon=True, name="shard-writer")

    def __enter__(self):
        if self.flush_seconds > 0:
            self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._timer.is_alive():
            self._timer.join()
        self.flush()

    def _tick(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()

    def add(self, records: list[dict]) -> None:
        with self._lock:
            self.buffer += records
        if self.flush_seconds == 0:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            self.store.append(self.buffer)
            self.buffer = []


def _generate_and_grade(source, graded, writer: _ShardWriter, bar) -> None:
    """Grade each finished trace in a worker thread while ``source`` (the engine) goes on; ``writer`` stores them.

    If the engine fails (or the run is interrupted), every trace already finished is still graded and written
    before the error propagates; a grading error is raised once generation is over."""
    failures = []

    def grade_and_store(job, gens, seconds) -> None:
        try:
            writer.add(graded(job, gens, seconds))
        except Exception as error:  # noqa: BLE001  (raised in the caller's thread below)
            failures.append(error)

    with writer, ThreadPoolExecutor(max_workers=1, thread_name_prefix="grading") as grader:
        for job, gens, seconds in source:
            grader.submit(grade_and_store, job, gens, seconds)
            bar.update(len(gens))
    if failures:
        raise failures[0]
