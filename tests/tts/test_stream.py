"""Continuous submission (``tts.stream``) against a fake vLLM step engine, on CPU.

``FakeStepEngine`` has vLLM's step API and semantics: FCFS admission of at most ``slots`` running requests, one
token per running request per step, ``stop_token_ids`` end a request and are part of its output, ``min_tokens``
holds them back, ``max_tokens`` and ``max_model_len`` cut it. Its tokens are a deterministic function of
(prompt ids, seed, position), as a seeded vLLM request's are of its own inputs only, so any schedule gives the
same outputs and the records of the continuous loop can be compared with the chunked loop's.
"""
import hashlib
import json
from collections import deque

import pytest

from tts_prune.models.toy import build_tokenizer
from tts_prune.tts.formats import FORMATS, ThinkingFormat, build_prompt
from tts_prune.tts.protocol import (DecodingConfig, Generation, answer_seed, answer_stop_ids, check_budgets, encode,
                                    end_trigger_ids, forced_end_ids, natural_end_ids)
from tts_prune.tts.stream import BatchSteps, ContinuousSweep, Job, run_to_completion
from tts_prune.tts.vllm_backend import VLLMBackend

TOK = build_tokenizer()
PLAIN = [TOK.convert_tokens_to_ids(c) for c in "abcdefghij0123456789 +="]
S1_LIKE = ThinkingFormat("s1-like", "<think>\n", "</think>", answer_cue="\nFinal Answer:", cap_newline=True,
                         natural_end="</think>\n", answer_stops=("<|im_start|>",))
QUESTIONS = [f"{i}+{2 * i}=?" for i in range(9)]


def _hash(*parts) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "big")


class FakeStepEngine:
    """See the module docstring. ``log``: (event, request id, step); ``running_per_step``: occupancy."""

    def __init__(self, slots: int = 3, max_model_len: int | None = None, ends=None, crash_at: int | None = None):
        self.slots, self.max_model_len, self.ends, self.crash_at = slots, max_model_len, ends, crash_at
        self.waiting: deque = deque()
        self.running: dict = {}
        self.clock = 0
        self.log: list = []
        self.received: list = []       # (prompt ids, request) of every request, in submission order
        self.running_per_step: list = []

    def add(self, rid, ids, request, group=0):
        self.log.append(("add", rid, self.clock))
        self.received.append((tuple(ids), request))
        self.waiting.append((rid, list(ids), request))

    def _next(self, ids, request, out):
        n = len(out)
        stops = sorted(request.stop_token_ids)
        natural = max(3 + _hash(tuple(ids), request.seed) % 14, request.min_tokens)
        if stops and n >= natural:
            choices = [s for s in stops if self.ends is None or s in self.ends] or stops
            return choices[_hash(tuple(ids), request.seed, "stop") % len(choices)]
        return PLAIN[_hash(tuple(ids), request.seed, n) % len(PLAIN)]

    def step(self):
        self.clock += 1
        if self.crash_at is not None and self.clock >= self.crash_at:
            raise RuntimeError("simulated engine crash")
        while self.waiting and len(self.running) < self.slots:
            rid, ids, request = self.waiting.popleft()
            self.running[rid] = (ids, request, [])
        self.running_per_step.append(len(self.running))
        done = []
        for rid, (ids, request, out) in list(self.running.items()):
            token = self._next(ids, request, out)
            out.append(token)
            full = self.max_model_len is not None and len(ids) + len(out) >= self.max_model_len
            if token in request.stop_token_ids or len(out) == request.max_tokens or full:
                del self.running[rid]
                done.append((rid, out))
                self.log.append(("finish", rid, self.clock))
        return done

    def has_unfinished(self):
        return bool(self.waiting or self.running)

    def abort(self, rids):
        rids = set(rids)
        self.waiting = deque(w for w in self.waiting if w[0] not in rids)
        for rid in rids & set(self.running):
            del self.running[rid]

    def close(self):
        pass


class GenerateOnly:
    """The same fake behind the old ``generate(prompts, requests)`` interface (one barrier per call)."""

    def __init__(self, **options):
        self.fake = FakeStepEngine(**options)

    def generate(self, prompts_ids, requests):
        return run_to_completion(self.fake, prompts_ids, requests)

    def close(self):
        pass


def backend(engine, **options) -> VLLMBackend:
    """A vLLM backend whose engine is already started (no artifact to prepare)."""
    started = VLLMBackend("fp", TOK, [TOK.eos_token_id], lambda: None, **options)
    started._engine = engine
    return started


def chunked_reference(engine, prompts, seeds, budgets, fmt, config):
    """The chunked request logic that ``VLLMBackend.sweep`` ran before continuous submission (commit 90f68ae),
    kept here as the reference: all thinking rounds of the chunk, then all its answers, one ``generate`` each."""
    budgets = check_budgets(budgets)
    stops = {TOK.eos_token_id, TOK.convert_tokens_to_ids("<|im_end|>")}
    triggers = end_trigger_ids(TOK, fmt, stops)
    ends, answer_stops = triggers | stops, answer_stop_ids(TOK, fmt, stops)
    request = ContinuousSweep(TOK, stops, config).request
    wait_ids, horizon = encode(TOK, "Wait"), budgets[-1]
    base = [encode(TOK, p) for p in prompts]
    thinking, natural, wait_starts = [[] for _ in prompts], [None] * len(prompts), [[] for _ in prompts]
    active = [r for r in range(len(prompts)) if horizon > 0]
    while active:
        outs = engine.generate([base[r] + thinking[r] for r in active], [
            request(horizon - len(thinking[r]), seeds[r] + 7919 * len(wait_starts[r]), ends,
                    max(config.min_thinking - len(thinking[r]), 1 if config.waits else 0)) for r in active])
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
    thinking = [t[:horizon] for t in thinking]
    asks, owners, forced = [], [], {}
    for r in range(len(prompts)):
        follow = natural_end_ids(TOK, fmt, natural[r], triggers) if natural[r] is not None else None
        if follow is not None:
            asks.append((base[r] + thinking[r] + follow, seeds[r]))
            owners.append((r, None))
            forced[(r, None)] = follow
        for b in budgets:
            if natural[r] is None or len(thinking[r]) >= b:
                suffix = forced_end_ids(TOK, fmt, thinking[r][:b])
                asks.append((base[r] + thinking[r][:b] + suffix, answer_seed(seeds[r], b)))
                owners.append((r, b))
                forced[(r, b)] = suffix
    outs = engine.generate([ids for ids, _ in asks], [request(config.answer_tokens, s, answer_stops) for _, s in asks])
    answers = {o: ((ids[:-1], False) if ids and ids[-1] in answer_stops else (ids, True))
               for o, ids in zip(owners, outs)}
    results = []
    for r in range(len(prompts)):
        for b in budgets:
            is_natural = natural[r] is not None and len(thinking[r]) < b
            think = thinking[r] if is_natural else thinking[r][:b]
            owner = (r, None) if is_natural else (r, b)
            answer, capped = answers.get(owner, ([], False))
            results.append(Generation(index=r, seed=int(seeds[r]), budget=b,
                                      thinking=TOK.decode(think, skip_special_tokens=False),
                                      answer=TOK.decode(answer, skip_special_tokens=True), thinking_tokens=len(think),
                                      answer_tokens=len(answer), capped=not is_natural,
                                      waits=sum(s < b for s in wait_starts[r]), answer_capped=capped,
                                      forced=TOK.decode(forced.get(owner, []), skip_special_tokens=False)))
    return results


def prompts(fmt):
    return [build_prompt(TOK, q, fmt) for q in QUESTIONS]


@pytest.mark.parametrize("fmt", [FORMATS["toy"], S1_LIKE], ids=["toy", "s1-like"])
@pytest.mark.parametrize("config", [
    DecodingConfig(answer_tokens=5),
    DecodingConfig(answer_tokens=5, waits=2),
    DecodingConfig(answer_tokens=5, min_thinking=12),
    DecodingConfig(temperature=0.7, top_p=0.9, answer_tokens=None),
], ids=["plain", "waits", "min-thinking", "sampled-until-stop"])
def test_continuous_records_and_requests_equal_the_chunked_loop(fmt, config):
    seeds = [7, 11, 42, 7, 11, 42, 7, 11, 42]
    budgets = [0, 4, 9, 20]
    old_engine = GenerateOnly(slots=4, max_model_len=400)
    old = chunked_reference(old_engine, prompts(fmt), seeds, budgets, fmt, config)
    fake = FakeStepEngine(slots=4, max_model_len=400)
    new = backend(fake, max_in_flight=5).sweep(prompts(fmt), seeds, budgets, fmt, config)
    assert new == old
    # the very same requests reached the engine (only their timing changed)
    assert sorted(map(repr, fake.received)) == sorted(map(repr, old_engine.fake.received))
    assert any(g.capped for g in new) and (any(not g.capped for g in new) or config.waits > 0)  # both paths run
    assert any(g.waits for g in new) == (config.waits > 0)


def test_answers_go_in_while_other_traces_still_think_and_the_engine_never_idles():
    fmt, config = FORMATS["toy"], DecodingConfig(answer_tokens=4)
    fake = FakeStepEngine(slots=3)
    backend(fake, max_in_flight=4).sweep(prompts(fmt), [0] * 9, [3, 30], fmt, config)
    added = {rid: step for event, rid, step in fake.log if event == "add"}
    finished = {rid: step for event, rid, step in fake.log if event == "finish"}
    thinking = [rid for rid in added if rid.split(":")[1] == "think"]
    answers = [rid for rid in added if rid.split(":")[1] != "think"]
    assert min(added[a] for a in answers) < max(finished[t] for t in thinking)   # no barrier before the answers
    for rid in answers:  # each answer is submitted the step its thinking finished (its prefix is still cached)
        number = rid.split(":")[0]
        last_think = max(finished[t] for t in thinking if t.split(":")[0] == number)
        assert added[rid] == last_think
    # Occupancy: every step until the last job was admitted ran with all slots busy.
    last_admitted = max(step for rid, step in added.items() if rid.split(":")[1:3] == ["think", "0"])
    assert last_admitted > 3 and all(n == fake.slots for n in fake.running_per_step[:last_admitted])
    # The bound on unfinished requests holds for thinking (answers always go in at once).
    events = sorted(fake.log, key=lambda e: (e[2], e[0] == "add"))
    live = 0
    for event, rid, _ in events:
        if rid.split(":")[1] == "think":
            live += 1 if event == "add" else -1
            assert live <= 4


def test_a_trace_that_ends_its_turn_needs_no_answer_and_still_completes():
    # Thinking that ends with EOS (no answer follows) at every budget above its length: no answer request.
    fmt, config = FORMATS["toy"], DecodingConfig(answer_tokens=4)
    fake = FakeStepEngine(slots=2, ends={TOK.eos_token_id})
    runner = ContinuousSweep(TOK, {TOK.eos_token_id}, config)
    jobs = [Job(p, 0, (40, 50), fmt, tag=i) for i, p in enumerate(prompts(fmt)[:3])]
    done = list(runner.run(fake, jobs))
    assert sorted(job.tag for job, _, _ in done) == [0, 1, 2]
    assert all(not g.capped and g.answer == "" and g.forced == "" for _, gens, _ in done for g in gens)
    assert all(kind == "think" for _, kind in runner.submitted)


def test_batch_steps_wraps_a_generate_only_engine():
    fake = FakeStepEngine(slots=2)
    steps = BatchSteps(GenerateOnly(slots=2))
    request = ContinuousSweep(TOK, {2}, DecodingConfig()).request(5, 3, {2})
    steps.add("a", [5, 6], request)
    steps.add("b", [7], request)
    steps.abort(["b"])
    assert steps.has_unfinished() and steps.step() == [("a", run_to_completion(fake, [[5, 6]], [request])[0])]
    assert not steps.has_unfinished() and steps.step() == []


def test_max_in_flight_is_validated():
    with pytest.raises(ValueError, match="max_in_flight=0"):
        VLLMBackend("fp", TOK, [2], lambda: None, max_in_flight=0)


def test_harness_answer_allowance_is_capped_by_the_context_and_stops_at_end_of_sequence():
    # s1's lm-eval harness: the answer request is SamplingParams(max_tokens=max_gen_toks, stop=[EOS text]);
    # vLLM ends it where max_model_len ends. The format's answer stop (<|im_start|>) is not a stop there.
    texts = prompts(S1_LIKE)[:5]
    context = max(len(encode(TOK, p)) for p in texts) + 25   # budget-4 answers are cut by the context
    harness = DecodingConfig(answer_tokens=None, max_gen_tokens=12)
    fake = FakeStepEngine(slots=4, max_model_len=context)
    gens = backend(fake).sweep(texts, [0] * 5, [4, 30], S1_LIKE, harness)
    trigger = TOK.convert_tokens_to_ids("</think>")
    answers = [(ids, q) for ids, q in fake.received if trigger not in q.stop_token_ids]
    assert answers and all(q.stop_token_ids == (TOK.eos_token_id,) for _, q in answers)
    assert all(q.max_tokens == min(12, context - len(ids)) for ids, q in answers)
    assert {q.max_tokens == 12 for _, q in answers} == {True, False}          # both bounds bind somewhere
    assert all(g.answer_tokens <= 12 for g in gens)
    own = FakeStepEngine(slots=4, max_model_len=context)
    backend(own).sweep(texts, [0] * 5, [4, 30], S1_LIKE, DecodingConfig(answer_tokens=12))
    im_start = TOK.convert_tokens_to_ids("<|im_start|>")
    assert all(im_start in q.stop_token_ids and q.max_tokens == 12 for _, q in own.received
               if trigger not in q.stop_token_ids)


def test_max_gen_tokens_is_validated_and_keyed_only_when_set():
    with pytest.raises(ValueError, match="replaces answer_tokens: set answer_tokens=None"):
        DecodingConfig(max_gen_tokens=32768)                  # answer_tokens keeps its default 4096
    with pytest.raises(ValueError, match="max_gen_tokens=0 must be >= 1"):
        DecodingConfig(answer_tokens=None, max_gen_tokens=0)
    assert "max_gen_tokens" not in DecodingConfig().describe()  # records made before the key keep their keys
    assert DecodingConfig(answer_tokens=None, max_gen_tokens=32768).describe()["max_gen_tokens"] == 32768


# ----------------------------------------------------------------------------- evaluate: crash safety, resume
def write_set(path, n):
    path.write_text("".join(json.dumps({"id": f"q{i}", "problem": q, "answer": str(3 * i)}) + "\n"
                            for i, q in enumerate(QUESTIONS[:n])))
    return str(path)


def run_eval(tmp_path, engine, data, **extra):
    """``evaluate`` through the vLLM backend with ``engine`` as its (already started) engine."""
    import tts_prune.tts.backends as backends
    from tts_prune.tts.evaluation import evaluate

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(backends.BACKENDS, "vllm", lambda model_or_path, options: backend(engine, max_in_flight=3))
        return evaluate("toy-model", data, [3, 12], backend="vllm", out=tmp_path / "r", model_name="toy",
                        thinking_format="toy", answer_tokens=4, show_progress=False, **extra)


def complete_jobs(log) -> set[int]:
    """Jobs whose requests all finished, answers included (every job of these tests has answers)."""
    events: dict = {}
    for event, rid, _ in log:
        events.setdefault(int(rid.split(":")[0]), []).append((event, rid))
    return {n for n, seen in events.items() if any(rid.split(":")[1] != "think" for _, rid in seen)
            and {rid for e, rid in seen if e == "add"} == {rid for e, rid in seen if e == "finish"}}


def test_a_crash_mid_run_keeps_every_finished_trace_and_a_rerun_completes_the_rest(tmp_path):
    from tts_prune.tts.results import ResultStore, load_results

    data = write_set(tmp_path / "set.jsonl", 8)
    ends = {4}  # thinking always ends by "</think>", so every trace has answers
    crashing = FakeStepEngine(slots=2, ends=ends, crash_at=25)
    with pytest.raises(RuntimeError, match="simulated engine crash"):
        run_eval(tmp_path, crashing, data)
    stored = load_results(tmp_path / "r")
    complete = complete_jobs(crashing.log)
    assert 0 < len(complete) < 8, "the crash came too early or too late to test a partial run"
    # Jobs are (problem, seed) in benchmark order, one seed (greedy): job n is problem q{n}.
    assert set(stored["problem_id"]) == {f"q{n}" for n in complete}
    assert stored.groupby("problem_id")["budget"].apply(lambda b: sorted(b) == [3, 12]).all()

    healthy = FakeStepEngine(slots=2, ends=ends)
    resumed = run_eval(tmp_path, healthy, data)
    again = {rid.split(":")[0] for e, rid, _ in healthy.log if e == "add" and rid.split(":")[1] == "think"}
    assert len(again) == 8 - len(complete)                                    # only the unfinished were redone
    clean = run_eval(tmp_path / "clean", FakeStepEngine(slots=5, ends=ends), data)
    columns = ["problem_id", "budget", "thinking", "forced", "answer", "capped", "correct", "key"]
    assert resumed[columns].equals(clean[columns]) and len(resumed) == 16
    assert len(load_results(tmp_path / "r")) == 16 and len(ResultStore(tmp_path / "r").keys()) == 16


def test_records_are_written_while_the_engine_still_runs(tmp_path):
    import time

    from tts_prune.tts.results import ResultStore

    data = write_set(tmp_path / "set.jsonl", 6)
    stored_while_running = []

    class Watching(FakeStepEngine):
        def step(self):  # once a trace has finished, hold the engine until its records are on disk
            if complete_jobs(self.log) and not stored_while_running:
                deadline = time.time() + 120  # starts the math-verify sandbox: seconds on a loaded machine
                while time.time() < deadline and not ResultStore(tmp_path / "r").keys():
                    time.sleep(0.05)
                stored_while_running.append((len(ResultStore(tmp_path / "r").keys()), self.has_unfinished()))
            return super().step()

    run_eval(tmp_path, Watching(slots=2, ends={4}), data, flush_seconds=0)
    count, engine_busy = stored_while_running[0]
    assert 0 < count < 12 and engine_busy     # finished traces were stored while others were still generating
