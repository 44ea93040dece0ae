"""One engine per model variant: ``open_engine`` + ``evaluate(engine, ...)``, and engines that really shut down.

The transformers backend on a tiny random model checks that one engine serving several benchmarks gives the
records of separate ``evaluate`` calls; a fake ``vllm`` package (``tests/_fake_vllm``, 0.32's API, recording
engine starts and shutdowns) checks that the vLLM path starts one engine for all of them and shuts it down
once, with vLLM's own shutdown call.
"""
import json

import pytest
import torch

import tts_prune
from tests._helpers_eval import toy_pair
from tts_prune.tts import backends, engine as engine_module, vllm_backend

torch.set_num_threads(1)
BUDGETS = [4, 12]
# Columns that may differ between two runs of the same request (wall time)
TIMING = ["batch_seconds"]


def _problem_sets(tmp_path) -> list[str]:
    """toy-reasoning (procedural) and two user .jsonl sets with different problems and graders."""
    numbers = tmp_path / "numbers.jsonl"
    numbers.write_text("".join(json.dumps({"id": f"n{i}", "problem": f"{i}+{i + 1}", "answer": str(2 * i + 1)}) + "\n"
                               for i in range(3)))
    words = tmp_path / "words.jsonl"
    words.write_text("".join(json.dumps({"id": f"w{i}", "problem": f"add {i} and 3", "answer": str(i + 3)}) + "\n"
                             for i in range(2)))
    return ["toy-reasoning", str(numbers), str(words)]


COMMON = dict(limit=3, thinking_format="toy", answer_tokens=6, model_name="toy", show_progress=False)


def _comparable(frame):
    return frame.drop(columns=TIMING).sort_values(["benchmark", "problem_id", "seed", "budget"]).reset_index(drop=True)


def test_one_engine_serves_every_benchmark_with_the_records_of_separate_calls(tmp_path, monkeypatch):
    import pandas as pd

    pair = toy_pair(seed=6)
    sets = _problem_sets(tmp_path)
    separate = pd.concat([tts_prune.evaluate(pair, b, BUDGETS, backend="transformers", out=tmp_path / "a", **COMMON)
                          for b in sets])
    opened, closed = [], []
    real_open, real_close = engine_module.open_backend, backends.TransformersBackend.close
    monkeypatch.setattr(engine_module, "open_backend", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    monkeypatch.setattr(backends.TransformersBackend, "close", lambda self: closed.append(self) or real_close(self))
    with tts_prune.open_engine(pair, backend="transformers", batch_size=8, model_name="toy") as engine:
        shared = pd.concat([tts_prune.evaluate(engine, b, BUDGETS, out=tmp_path / "b", **COMMON) for b in sets])
        assert not engine.closed and closed == []  # evaluate(engine) never closes what it did not open
    assert len(opened) == 1 and len(closed) == 1 and engine.closed
    assert set(shared["benchmark"]) == {"toy-reasoning", "numbers", "words"}
    assert len(shared) == (3 + 3 + 2) * len(BUDGETS)
    pd.testing.assert_frame_equal(_comparable(shared), _comparable(separate))
    engine.close()  # a second close does nothing
    assert len(closed) == 1
    with pytest.raises(RuntimeError, match="is closed; open another"):
        tts_prune.evaluate(engine, sets[0], BUDGETS, out=tmp_path / "b", **COMMON)


def test_an_engine_refuses_evaluate_arguments_that_ask_for_another_backend(tmp_path):
    pair = toy_pair(seed=6)
    with tts_prune.open_engine(pair, backend="transformers", batch_size=4) as engine:
        for wrong in ({"backend": "vllm"}, {"batch_size": 16}, {"vllm_options": {"dtype": "float32"}}):
            (key, value), = wrong.items()
            with pytest.raises(ValueError, match=rf"opened with {key}=.*open another engine"):
                tts_prune.evaluate(engine, "toy-reasoning", BUDGETS, out=tmp_path, **wrong, **COMMON)
        # the engine's own values, or the defaults, are fine: batch_size is then the engine's
        frame = tts_prune.evaluate(engine, "toy-reasoning", BUDGETS, backend="transformers", batch_size=4,
                                   out=tmp_path, **COMMON)
    assert len(frame) == 3 * len(BUDGETS)


def test_evaluate_closes_the_engine_it_opened_also_when_it_fails(tmp_path, monkeypatch):
    closed = []
    real_close = backends.TransformersBackend.close
    monkeypatch.setattr(backends.TransformersBackend, "close", lambda self: closed.append(self) or real_close(self))
    with pytest.raises(ValueError, match="no-such-benchmark"):  # fails after the engine is opened
        tts_prune.evaluate(toy_pair(seed=6), "no-such-benchmark", BUDGETS, backend="transformers", out=tmp_path,
                           **COMMON)
    assert len(closed) == 1
    # arguments that cannot work are refused before an engine (a vLLM start) is opened at all
    with pytest.raises(ValueError, match="budget"):
        tts_prune.evaluate(toy_pair(seed=6), "toy-reasoning", [-1], backend="transformers", out=tmp_path, **COMMON)
    assert len(closed) == 1


def _events(fake, *names):
    return [e["event"] for e in fake.EVENTS if not names or e["event"] in names]


def test_vllm_one_engine_for_four_benchmarks_started_once_and_shut_down_once(fake_vllm, tmp_path):
    pair = toy_pair(seed=6)
    sets = _problem_sets(tmp_path) + ["gsm8k"]
    common = {**COMMON, "limit": 2}
    options = {"artifact_root": str(tmp_path / "artifacts")}
    with tts_prune.open_engine(pair, backend="vllm", vllm_options=options, model_name="toy") as engine:
        assert _events(fake_vllm) == []  # nothing starts before the first request
        frames = [tts_prune.evaluate(engine, b, BUDGETS, out=tmp_path / "r", **common) for b in sets]
        assert _events(fake_vllm) == ["start"] and fake_vllm.LLM.alive == 1
    assert _events(fake_vllm, "start", "shutdown") == ["start", "shutdown"] and fake_vllm.LLM.alive == 0
    assert "destroy_model_parallel" in _events(fake_vllm)
    assert [len(f) for f in frames] == [2 * len(BUDGETS)] * 4
    assert all(set(f["backend"]) == {"vllm"} for f in frames)
    # the same requests again: every record is stored, so no engine starts at all
    fake_vllm.EVENTS.clear()
    with tts_prune.open_engine(pair, backend="vllm", vllm_options=options, model_name="toy") as engine:
        again = [tts_prune.evaluate(engine, b, BUDGETS, out=tmp_path / "r", **common) for b in sets]
    assert _events(fake_vllm) == [] and [f["key"].tolist() for f in again] == [f["key"].tolist() for f in frames]
    # separate calls, as before engines were shared: one start and one shutdown per benchmark
    for b in sets:
        tts_prune.evaluate(pair, b, BUDGETS, backend="vllm", out=tmp_path / "separate", vllm_options=options, **common)
    assert _events(fake_vllm, "start", "shutdown") == ["start", "shutdown"] * 4


@pytest.mark.parametrize("had_group", [False, True], ids=["engine-made-the-group", "caller-owns-the-group"])
def test_vllm_engine_close_shuts_the_core_down_and_only_its_own_distributed_state(fake_vllm, tmp_path, monkeypatch,
                                                                                had_group):
    pair = toy_pair(seed=6)
    artifact = backends.save_artifact(*pair, root=tmp_path)
    state = {"initialized": had_group}
    monkeypatch.setattr(vllm_backend, "_distributed_initialized", lambda: state["initialized"])
    real = fake_vllm.LLM.__init__

    def start(self, *args, **kwargs):  # vLLM initialises torch.distributed for its engine when none exists
        real(self, *args, **kwargs)
        state["initialized"] = True

    monkeypatch.setattr(fake_vllm.LLM, "__init__", start)
    engine = vllm_backend.VLLMEngine(str(artifact.path))
    engine.close()
    engine.close()  # idempotent
    expected = ["start", "shutdown", "destroy_model_parallel"] + ([] if had_group else ["destroy_distributed_environment"])
    assert _events(fake_vllm) == expected and fake_vllm.LLM.alive == 0


def test_data_parallel_close_ends_every_replica_even_a_hung_one():
    from tests._hanging_engine import HangingEngine
    from tts_prune.tts.vllm_backend import DataParallelEngine

    engine = DataParallelEngine("unused", 1, HangingEngine)  # one replica: each spawned process costs seconds
    assert engine.generate([[5], [6], [7]], [None] * 3) == [[1], [1], [1]]
    processes = [p for p, _ in engine.workers]
    engine.close(timeout_s=2)
    assert engine.workers == [] and not any(p.is_alive() for p in processes)
    engine.close()  # nothing left to close
