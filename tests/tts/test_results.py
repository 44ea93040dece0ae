"""evaluate() end to end on a tiny model, the result store, resume, and kill -9 safety."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest
import torch

from tests._helpers_eval import toy_pair
from tts_prune.tts.evaluation import evaluate, grade
from tts_prune.tts.results import ResultStore, load_results

torch.set_num_threads(1)


def write_set(path, n=3):
    with open(path, "w") as handle:
        for i in range(n):
            handle.write(json.dumps({"id": f"q{i}", "problem": f"{i}+{i}=?", "answer": str(2 * i)}) + "\n")
    return path


@pytest.fixture(scope="module")
def pair():
    return toy_pair(seed=0, logit_scale=40.0)


def test_evaluate_tidy_frame_and_provenance(pair, tmp_path):
    data = write_set(tmp_path / "set.jsonl")
    df = evaluate(pair, str(data), [2, 6], recipe={"method": "wanda", "sparsity": 0.5}, out=tmp_path / "r",
                  model_name="tiny", thinking_format="toy", answer_tokens=4, show_progress=False)
    assert len(df) == 3 * 2
    for column in ["problem_id", "budget", "seed", "correct", "thinking_tokens", "capped", "answer_tokens", "waits",
                   "benchmark", "model", "recipe", "model_hash", "backend", "decoding", "package_version"]:
        assert column in df.columns
    assert set(df["budget"]) == {2, 6} and (df["thinking_tokens"] <= df["budget"]).all()
    assert df["recipe"].iloc[0] == {"method": "wanda", "sparsity": 0.5} and df["backend"].iloc[0] == "transformers"
    # correctness is recomputed independently from the stored answer text
    for _, row in df.iterrows():
        response = row["answer"] if row["answer"].strip() else row["thinking"]
        assert row["correct"] == grade(str(data), response, row["gold"])


def test_rerun_skips_finished_records(pair, tmp_path):
    data = write_set(tmp_path / "set.jsonl")
    kwargs = dict(out=tmp_path / "r", model_name="tiny", thinking_format="toy", answer_tokens=3,
                  show_progress=False)
    first = evaluate(pair, str(data), [4], **kwargs)
    shards = ResultStore(tmp_path / "r").shards()
    again = evaluate(pair, str(data), [4], **kwargs)
    assert ResultStore(tmp_path / "r").shards() == shards     # nothing regenerated
    pd.testing.assert_frame_equal(first, again)
    wider = evaluate(pair, str(data), [4, 8], **kwargs)        # a new budget: only the new records are added
    assert len(wider) == 6 and len(load_results(tmp_path / "r")) == 6


def test_store_is_atomic_and_ignores_temp_files(tmp_path):
    store = ResultStore(tmp_path)
    store.append([{"model": "m", "problem_id": "a", "budget": 1, "seed": 0, "correct": True}])
    (tmp_path / ".half-written.tmp").write_text('{"model": "m", "probl')    # what a crash leaves behind
    assert len(load_results(tmp_path)) == 1 and store.append([]) is None


def _records(n, start=0, text="x" * 50):
    return [{"model": "m", "problem_id": f"p{i}", "budget": 4, "seed": 0, "correct": i % 2 == 0,
             "thinking_tokens": i, "prompt": f"q{i}", "thinking": text, "forced": "", "answer": str(i)}
            for i in range(start, start + n)]


def test_keys_and_text_free_columns_come_from_the_index_without_parsing_the_texts(tmp_path):
    store = ResultStore(tmp_path)
    first, second = store.append(_records(3)), store.append(_records(2, start=3))
    assert first.with_suffix(".index").is_file() and '"thinking":' not in first.with_suffix(".index").read_text()
    full = load_results(tmp_path)
    # Break the text shards: only readers that parse them can notice.
    for shard in (first, second):
        shard.write_text("not json\n")
    assert store.keys() == set(full["key"])
    small = load_results(tmp_path, columns=["problem_id", "correct", "thinking_tokens"])
    assert list(small.columns) == ["key", "problem_id", "correct", "thinking_tokens"]
    pd.testing.assert_frame_equal(small, full[["key", "problem_id", "correct", "thinking_tokens"]])
    with pytest.raises(json.JSONDecodeError):
        load_results(tmp_path, columns=["thinking"])


def test_load_by_keys_parses_only_the_shards_that_hold_them(tmp_path):
    store = ResultStore(tmp_path)
    keep = store.append(_records(3))
    other = store.append(_records(2, start=3))
    wanted = set(load_results(tmp_path).query("problem_id in ['p0', 'p2']")["key"])
    other.write_text("not json\n")                               # never opened: it holds none of the keys
    got = load_results(tmp_path, keys=wanted)
    assert sorted(got["problem_id"]) == ["p0", "p2"] and set(got["thinking"]) == {"x" * 50}
    assert keep.is_file() and load_results(tmp_path, keys=set()).empty


def test_shards_written_before_indexes_existed_are_still_read(tmp_path):
    store = ResultStore(tmp_path)
    records = _records(3)
    new = store.append(records)
    old = tmp_path / "20260101T000000-1-old.jsonl"           # an old shard: same lines, no index beside it
    old.write_text("".join(json.dumps({**r, "problem_id": r["problem_id"] + "-old", "key": f"k{i}"}) + "\n"
                           for i, r in enumerate(records)))
    assert not old.with_suffix(".index").exists() and new.with_suffix(".index").exists()
    assert store.keys() == set(load_results(tmp_path)["key"]) and len(store.keys()) == 6
    small = load_results(tmp_path, columns=["problem_id"])
    assert sorted(small["problem_id"]) == ["p0", "p0-old", "p1", "p1-old", "p2", "p2-old"]
    assert sorted(load_results(tmp_path, keys={"k1"})["problem_id"]) == ["p1-old"]


def test_an_index_without_its_shard_is_ignored(tmp_path):
    store = ResultStore(tmp_path)
    shard = store.append(_records(2))
    shard.unlink()                                            # a kill between the index's rename and the shard's
    assert store.keys() == set() and load_results(tmp_path, columns=["correct"]).empty


SCRIPT = textwrap.dedent("""
    import os, sys, time, torch
    sys.path.insert(0, {root!r})
    torch.set_num_threads(1)
    from tests._helpers_eval import toy_pair
    from tts_prune.tts import results
    from tts_prune.tts.evaluation import evaluate

    pause = os.environ.get("PAUSE_AFTER_SHARDS")
    if pause:       # stop mid-sweep after N finished shards so the kill lands there on any machine, however loaded
        append, written = results.ResultStore.append, []

        def paced(self, records):
            path = append(self, records)
            written.append(path)
            if len(written) == int(pause):
                open({ready!r}, "w").close()
                time.sleep(600)
            return path

        results.ResultStore.append = paced
    evaluate(toy_pair(0, 40.0), {data!r}, [3, 40], out={out!r}, model_name="tiny", thinking_format="toy",
             answer_tokens=3, batch_size=1, show_progress=False, flush_seconds=0)
""")


def test_kill_9_mid_sweep_loses_no_finished_record(tmp_path):
    data, out, ready = str(write_set(tmp_path / "set.jsonl", n=6)), str(tmp_path / "r"), tmp_path / "ready"
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(root=os.getcwd(), data=data, out=out, ready=str(ready)))
    proc = subprocess.Popen([sys.executable, str(script)], env={**os.environ, "PAUSE_AFTER_SHARDS": "2"})
    deadline = time.time() + 300
    while time.time() < deadline and not ready.exists() and proc.poll() is None:
        time.sleep(0.05)
    assert ready.exists(), "the sweep never wrote its second shard"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = load_results(out)
    assert 2 <= len(before) < 12, "the sweep was not stopped part-way"
    for shard in ResultStore(out).shards():                     # every shard is complete JSON
        assert all(json.loads(line)["key"] for line in shard.read_text().splitlines())
    env = {k: v for k, v in os.environ.items() if k != "PAUSE_AFTER_SHARDS"}
    subprocess.run([sys.executable, str(script)], check=True, env=env)
    after = load_results(out)
    assert len(after) == 12 and after["key"].is_unique
    kept = after.set_index("key").loc[before["key"], "answer"]
    assert list(kept) == list(before["answer"])                 # finished records survived unchanged


def test_cli_eval_runs(pair, tmp_path, capsys):
    from tts_prune.cli import main

    model, tok = pair
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    data = write_set(tmp_path / "set.jsonl", n=2)
    code = main(["eval", "--model", str(tmp_path / "m"), "--benchmark", str(data), "--budgets", "4,8",
                 "--answer-tokens", "3", "--format", "toy", "--backend", "transformers", "--out", str(tmp_path / "r")])
    assert code == 0
    assert "ci_low" in capsys.readouterr().out and len(load_results(tmp_path / "r")) == 4


# ----------------------------------------------------------------------------- the cache key is the whole request
def _variants(pair, tmp_path):
    """(label, positional model, kwargs changes, budgets) — each changes exactly one part of the request."""
    from dataclasses import replace

    from tests.tts.test_backends import HFEngine, pruned
    from tts_prune.tts.formats import FORMATS

    model, tok = pair
    other_text = tmp_path / "other" / "set.jsonl"
    other_text.parent.mkdir()
    with open(other_text, "w") as handle:   # same ids, same benchmark name, different prompt text
        for i in range(3):
            handle.write(json.dumps({"id": f"q{i}", "problem": f"{i} + {i} = ?", "answer": str(2 * i)}) + "\n")
    return [
        ("model name", pair, {"model_name": "tiny-2"}),
        ("weights (re-pruned under one name)", (pruned(model), tok), {}),
        ("recipe", pair, {"recipe": {"method": "wanda", "sparsity": 0.5}}),
        ("prompt text", pair, {"benchmark": str(other_text)}),
        ("format", pair, {"thinking_format": replace(FORMATS["toy"], think_end="</think>")}),
        ("answer cue", pair, {"thinking_format": replace(FORMATS["toy"], answer_cue="Answer: ")}),
        ("answer budget", pair, {"answer_tokens": 4}),
        ("harness answer allowance", pair, {"max_gen_tokens": 5}),
        ("waits", pair, {"waits": 1}),
        ("min thinking", pair, {"min_thinking": 1}),
        ("temperature", pair, {"temperature": 0.7}),
        ("top_p", pair, {"top_p": 0.9}),
        ("top_k", pair, {"top_k": 5}),
        ("grading mode", pair, {"grade_thinking": True}),
        ("backend", pair, {"backend": "vllm", "vllm_options": {"engine": HFEngine, "artifact_root": tmp_path / "a"}}),
        ("seed", pair, {"seeds": [3]}),
        ("benchmark", pair, {"benchmark": str(tmp_path / "renamed.jsonl")}),
    ]


def test_any_change_to_the_request_regenerates_and_a_rerun_regenerates_nothing(pair, tmp_path):
    data = write_set(tmp_path / "set.jsonl")
    write_set(tmp_path / "renamed.jsonl")
    base = dict(benchmark=str(data), out=tmp_path / "r", model_name="tiny", thinking_format="toy", answer_tokens=3,
                show_progress=False)
    first = evaluate(pair, budgets=[2, 6], **base)
    assert len(first) == 6
    for label, model, change in _variants(pair, tmp_path):
        before = set(load_results(tmp_path / "r")["key"])
        got = evaluate(model, budgets=[2, 6], **{**base, **change})
        assert len(got) == 6 and not set(got["key"]) & before, f"changing the {label} reused stored records"
        shards = ResultStore(tmp_path / "r").shards()
        again = evaluate(model, budgets=[2, 6], **{**base, **change})
        assert ResultStore(tmp_path / "r").shards() == shards, f"an unchanged rerun ({label}) regenerated"
        pd.testing.assert_frame_equal(got, again)
    before = set(load_results(tmp_path / "r")["key"])
    wider = evaluate(pair, budgets=[2, 6, 9], **base)                # a new budget: only its records are new
    assert len(set(wider["key"]) - before) == 3 and set(first["key"]) <= set(wider["key"])


def test_evaluate_warns_when_traces_pass_the_models_context(tmp_path):
    import warnings

    model, tokenizer = toy_pair(seed=0, logit_scale=40.0)
    data = write_set(tmp_path / "set.jsonl", n=1)
    model.config.max_position_embeddings = 64
    with pytest.warns(UserWarning, match=r"past the model's 64 \(max_position_embeddings\)"):
        evaluate((model, tokenizer), str(data), [4, 48], answer_tokens=16, out=tmp_path / "a", show_progress=False)
    model.config.max_position_embeddings = 1024
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        evaluate((model, tokenizer), str(data), [4, 48], answer_tokens=16, out=tmp_path / "b", show_progress=False)
