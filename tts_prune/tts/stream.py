"""Continuous submission of budget sweeps to a step engine: the scheduler always has work, no chunk barriers.

A *job* is one (prompt, seed) trace to sweep over its budgets. Every job's thinking request goes to the engine
(at most ``max_in_flight`` requests unfinished, a bound on host memory and on the engine's waiting queue), and
the moment a thinking request finishes, the next "Wait" round or the job's answer requests at every budget are
submitted (prompt + thinking[:B] + the forced end, or the natural end): each answer is prefilled while its
thinking prefix is still in vLLM's prefix cache (automatic prefix caching, Kwon et al., arXiv 2309.06180), and
it joins the running batch at the next engine step instead of after the slowest trace of a chunk. Answers are
submitted before new thinking requests are admitted, so in a first-come-first-served queue they come first.
A job's generations are yielded as soon as its last request finishes, for grading and storage while the
engine goes on.

The requests are exactly those of the chunked loop that came before (stop ids, forced ends, "Wait" rounds with
s1's ``min_tokens=1``, ``min_thinking``, seeds), so greedy records are unchanged: only the time at which each
request is submitted differs, and a seeded vLLM request does not depend on its batch neighbours.

A step engine has ``add(request_id, prompt_ids, request, group)``, ``step() -> [(request_id, token_ids)]`` of the
requests that finished in that step, ``has_unfinished()`` and ``abort(request_ids)``; ``group`` names the job,
so an engine with replicas (``replicas.DataParallelEngine``) keeps a job's requests (and its cached prefix)
on one replica. ``BatchSteps`` turns an engine that only has ``generate(prompts, requests)`` into one (each step
answers everything submitted so far: a barrier engine, used by tests and simple engines).
"""
from __future__ import annotations

import time
import uuid
from collections import deque
from dataclasses import dataclass

from .formats import ThinkingFormat
from .protocol import (DecodingConfig, FormatRules, Generation, answer_seed, assemble, encode, forced_end_ids,
                       harness_answer_limit, natural_end_ids)

DEFAULT_MAX_IN_FLIGHT = 512  # 2x vLLM's default max_num_seqs (256): the scheduler always has a queue to draw from
WAIT_SEED_STRIDE = 7919      # the seed of "Wait" round w is seed + 7919 * w (as the chunked loop drew them)


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


@dataclass(frozen=True)
class Job:
    """One (prompt, seed) trace to sweep at ``budgets`` (increasing) in format ``fmt``; ``tag`` is the caller's."""

    prompt: str
    seed: int
    budgets: tuple[int, ...]
    fmt: ThinkingFormat
    tag: object = None


class BatchSteps:
    """A ``generate(prompts, requests)`` engine as a step engine: each step generates everything queued."""

    def __init__(self, engine):
        self.engine = engine
        self.queue: list[tuple[str, list[int], Request]] = []

    def add(self, request_id: str, prompt_ids: list[int], request: Request, group: int = 0) -> None:
        self.queue.append((request_id, list(prompt_ids), request))

    def step(self) -> list[tuple[str, list[int]]]:
        queue, self.queue = self.queue, []
        outs = self.engine.generate([ids for _, ids, _ in queue], [q for _, _, q in queue]) if queue else []
        return [(rid, list(out)) for (rid, _, _), out in zip(queue, outs)]

    def has_unfinished(self) -> bool:
        return bool(self.queue)

    def abort(self, request_ids) -> None:
        dropped = set(request_ids)
        self.queue = [entry for entry in self.queue if entry[0] not in dropped]

    def __getattr__(self, name):  # close(), max_model_len, ... of the wrapped engine
        if name == "engine":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.engine, name)


def as_step_engine(engine):
    """``engine`` itself when it has the step API, else wrapped in ``BatchSteps``."""
    return engine if hasattr(engine, "step") and hasattr(engine, "add") else BatchSteps(engine)


def run_to_completion(engine, prompts_ids: list[list[int]], requests: list[Request]) -> list[list[int]]:
    """``generate`` on a step engine: submit all, step until all are done, outputs in request order."""
    for i, (ids, request) in enumerate(zip(prompts_ids, requests)):
        engine.add(str(i), ids, request, i)
    outs: dict[str, list[int]] = {}
    while len(outs) < len(requests):
        outs.update(engine.step())
    return [outs[str(i)] for i in range(len(requests))]


class _Trace:
    """One job in flight: its thinking so far, how it ended, and its answers as they come back."""

    def __init__(self, job: Job, number: int, prompt_ids: list[int]):
        self.job, self.number, self.base = job, number, prompt_ids
        self.thinking: list[int] = []
        self.natural: int | None = None
        self.wait_starts: list[int] = []
        self.answers: dict = {}   # owner (budget, or None for the natural end) -> (answer ids, capped)
        self.forced: dict = {}    # owner -> forced token ids between thinking and answer
        self.pending = 0
        self.began = time.perf_counter()


class ContinuousSweep:
    """Budget sweeps of many jobs on one step engine (see the module docstring).

    ``context``: the engine's ``max_model_len``; with ``config.max_gen_tokens`` an answer may use
    ``min(max_gen_tokens, context - its prompt)`` tokens, as vLLM caps s1's harness request."""

    def __init__(self, tokenizer, stops: set[int], config: DecodingConfig, context: int | None = None):
        self.tokenizer, self.stops, self.config, self.context = tokenizer, set(stops), config, context
        self._rules: dict = {}
        self.submitted: list[tuple[str, str]] = []  # (request id, "think"/"answer") in submission order

    def rules(self, fmt: ThinkingFormat) -> FormatRules:
        if fmt not in self._rules:
            self._rules[fmt] = FormatRules(self.tokenizer, fmt, self.stops, self.config)
        return self._rules[fmt]

    def request(self, max_tokens, seed: int, stop_ids, min_tokens: int = 0) -> Request:
        config = self.config
        return Request(max_tokens=max_tokens, temperature=config.temperature, top_p=config.top_p, top_k=config.top_k,
                       seed=int(seed) % (2**63), stop_token_ids=tuple(sorted(stop_ids)),
                       min_tokens=min(min_tokens, max_tokens) if max_tokens else min_tokens)

    def run(self, engine, jobs, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT):
        """Yield ``(job, generations, seconds since its first request)`` as each job completes.

        ``engine`` is a step engine (``as_step_engine``); requests left unfinished when the run stops (the consumer
        closed the generator, or the engine raised) are aborted."""
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight={max_in_flight} must be >= 1 (unfinished requests in the engine)")
        waiting = deque(enumerate(jobs))
        run = uuid.uuid4().hex[:8]
        live: dict[str, tuple[_Trace, object]] = {}

        def submit(trace: _Trace, owner, ids: list[int], request: Request) -> None:
            rid = f"{trace.number}:{owner}:{len(trace.wait_starts)}:{run}"  # unique in an engine that outlives runs
            engine.add(rid, ids, request, trace.number)
            live[rid] = (trace, owner)
            trace.pending += 1
            self.submitted.append((rid, "think" if owner == "think" else "answer"))

        try:
            finished: list[_Trace] = []
            while True:
                while waiting and len(live) < max_in_flight:  # admit new jobs after the answers went in
                    number, job = waiting.popleft()
                    trace = _Trace(job, number, encode(self.tokenizer, job.prompt))
                    self._think_or_answer(trace, submit)
                    if not trace.pending:
                        finished.append(trace)
                for trace in finished:
                    yield trace.job, self.generations(trace), time.perf_counter() - trace.began
                finished = []
                if not live:
                    return
                for rid, ids in engine.step():
                    trace, owner = live.pop(rid)
                    trace.pending -= 1
                    if owner == "think":
                        self._thinking_done(trace, ids, submit)
                    else:
                        stops = self.rules(trace.job.fmt).answer_stops
                        stopped = bool(ids) and ids[-1] in stops
                        trace.answers[owner] = (ids[:-1] if stopped else ids, not stopped)  # no stop: length cut it
                    if not trace.pending:
                        finished.append(trace)
        finally:
            if live and hasattr(engine, "abort"):  # the consumer stopped or the engine failed: free the engine
                engine.abort(list(live))

    def _think_or_answer(self, trace: _Trace, submit) -> None:
        """Submit the trace's next thinking round, or its answers when its thinking is complete."""
        job, config = trace.job, self.config
        horizon = job.budgets[-1]
        if len(trace.thinking) < horizon and trace.natural is None:
            fresh = 1 if config.waits > 0 else 0  # s1: min_tokens=1 in every extension round
            request = self.request(horizon - len(trace.thinking), job.seed + WAIT_SEED_STRIDE * len(trace.wait_starts),
                                   self.rules(job.fmt).ends, max(config.min_thinking - len(trace.thinking), fresh))
            submit(trace, "think", trace.base + trace.thinking, request)
            return
        trace.thinking = trace.thinking[:horizon]
        self._answer(trace, submit)

    def _thinking_done(self, trace: _Trace, ids: list[int], submit) -> None:
        rules = self.rules(trace.job.fmt)
        if ids and ids[-1] in rules.ends:
            trace.thinking += ids[:-1]
            if len(trace.wait_starts) < self.config.waits:
                trace.wait_starts.append(len(trace.thinking))
                trace.thinking += rules.wait_ids
                if len(trace.thinking) < trace.job.budgets[-1]:
                    self._think_or_answer(trace, submit)
                    return
            else:
                trace.natural = ids[-1]
        else:
            trace.thinking += ids
        trace.thinking = trace.thinking[:trace.job.budgets[-1]]
        self._answer(trace, submit)

    def _answer(self, trace: _Trace, submit) -> None:
        job, tok = trace.job, self.tokenizer
        rules = self.rules(job.fmt)
        base, thinking, natural = trace.base, trace.thinking, trace.natural
        requests = []
        if natural is not None:
            follow = natural_end_ids(tok, job.fmt, natural, rules.triggers)
            if follow is not None:
                requests.append((None, base + thinking + follow, job.seed, follow))
        for budget in job.budgets:
            if natural is None or len(thinking) >= budget:
                suffix = forced_end_ids(tok, job.fmt, thinking[:budget])
                requests.append((budget, base + thinking[:budget] + suffix, answer_seed(job.seed, budget), suffix))
        for owner, ids, seed, forced in requests:
            trace.forced[owner] = forced
            limit = harness_answer_limit(self.config, len(ids), self.context)
            submit(trace, owner, ids, self.request(limit, seed, rules.answer_stops))

    def generations(self, trace: _Trace) -> list[Generation]:
        """The trace's records at every budget (the protocol's ``assemble``)."""
        natural_at = len(trace.thinking) if trace.natural is not None else None
        answers = {owner: (ids, capped, trace.forced.get(owner, [])) for owner, (ids, capped) in trace.answers.items()}
        return assemble(self.tokenizer, trace.number, trace.job.seed, trace.job.budgets, trace.thinking, natural_at,
                        trace.wait_starts, answers)


def chunked_stream(backend, jobs: list[Job], config: DecodingConfig):
    """``ContinuousSweep.run``'s contract for a backend with a batch loop only (``sweep``, e.g. transformers):
    runs of consecutive jobs of one (format, budgets), ``backend.chunk_rows`` at a time; a chunk's jobs complete
    together and ``seconds`` is the chunk's wall time."""
    start = 0
    while start < len(jobs):
        first = jobs[start]
        stop = start + 1
        while (stop < len(jobs) and stop - start < backend.chunk_rows
               and (jobs[stop].fmt, jobs[stop].budgets) == (first.fmt, first.budgets)):
            stop += 1
        part = jobs[start:stop]
        began = time.perf_counter()
        gens = backend.sweep([j.prompt for j in part], [j.seed for j in part], first.budgets, first.fmt, config)
        seconds = time.perf_counter() - began
        for i, job in enumerate(part):
            yield job, [g for g in gens if g.index == i], seconds
        start = stop
