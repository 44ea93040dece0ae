"""Every ```python block of README.md runs as a newcomer would run it, offline, and shows what the README says.

Each block runs in its own Python process, in a temporary folder that is its ``TTS_PRUNE_HOME`` (results, pruned
models and figures land there, never in the checkout), with ``HF_HUB_OFFLINE=1`` and the checkout's embedded models
and benchmark files linked in. A block's bare expressions are what a notebook or a REPL would display: the runner
keeps their values, and a check per block (keyed by the heading it sits under) asserts on them against independent
computations. A README block without a check fails the test, so a new example cannot go untested.

Blocks that read ``results/default/records`` (what ``make study`` writes) get a stand-in store of the same schema:
the synthetic toy-reasoner records of ``tests/study/test_report_stats.py`` (three runs with known effects). The
shell examples (``make study``, ``tts-prune ...``) run the whole study or the CLI and are out of scope here; the
study's own tests cover them. Every block is meant to finish in a minute or two on 2 cores; no time is asserted.
"""
import ast
import json
import os
import re
import subprocess
import sys
import textwrap
from math import comb
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)

# The runner: exec the block with each top-level expression's value kept (as a REPL would show it), then the check.
RUNNER = textwrap.dedent('''
    import ast, sys
    block, check = open(sys.argv[1]).read(), open(sys.argv[2]).read()
    tree = ast.parse(block)
    for i, node in enumerate(tree.body):
        if isinstance(node, ast.Expr):
            tree.body[i] = ast.parse(f"shown.append(None)").body[0]
            tree.body[i].value.args = [node.value]
    ast.fix_missing_locations(tree)
    namespace = {"shown": []}
    exec(compile(tree, "README.md", "exec"), namespace)
    exec(check, namespace)
    print("README BLOCK OK")
''')


def blocks() -> list[tuple[str, str]]:
    """(the heading above the block, its code) for every ```python block, in README order."""
    text = README.read_text()
    found = []
    for match in FENCE.finditer(text):
        headings = re.findall(r"^#+ (.+)$", text[:match.start()], re.M)
        found.append((headings[-1].strip(), match.group(1)))
    return found


SUMMARY_COLUMNS = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
                   "mlp.up_proj", "mlp.down_proj"}

CHECKS = {
    "Models": f"""
assert len(blocks) == model.config.num_hidden_layers == 30
assert set(shown[0]) == {SUMMARY_COLUMNS!r}, shown[0]
summary = shown[1]
assert len(summary) == 30
total = sum(p.numel() for b in blocks for p in b.parameters())
assert summary.select_dtypes("number").filter(like="param").sum().max() in (total, sum(
    l.weight.numel() for b in blocks for l in tts_prune.prunable_linears(b).values()))
""",
    "Pruning and evaluating from Python or the shell": """
import json, pathlib
saved = pathlib.Path("models/pruned/smollm2-wanda-owl-0.2")
recipe = json.loads((saved / "pruning_recipe.json").read_text())
assert recipe["method"] == "wanda" and recipe["allocation"] == "owl"
linears = [l for b in tp.decoder_layers(model) for l in tp.prunable_linears(b).values()]
zeros = sum(int((l.weight == 0).sum()) for l in linears) / sum(l.weight.numel() for l in linears)
assert abs(zeros - 0.2) < 0.01 and abs(result.global_sparsity - zeros) < 1e-6, (zeros, result.global_sparsity)
assert len(frame) == 3 * 2 and sorted(set(frame["budget"])) == [32, 64]
assert set(frame["answer_budget_source"]) == {"card:smollm2-135m-instruct"} and set(frame["answer_budget"]) == {32}
assert (frame["answer_tokens"] <= 32).all() and (frame["thinking_tokens"] <= frame["budget"]).all()
assert shown[0] == pathlib.Path("models/pruned/smollm2-wanda-owl-0.2")  # save_pruned returns where it saved
table = shown[1]                                  # accuracy_table: one row per budget (the index)
assert sorted(table.index) == [32, 64]
for budget, row in table.iterrows():
    assert abs(row["acc"] - frame[frame["budget"] == budget]["correct"].mean()) < 1e-9
assert [f["benchmark"].iloc[0] for f in frames] == ["gsm8k", "math500"] and all(len(f) == 2 for f in frames)
""",
    "Beyond the paper: parallel scaling, trace diagnostics, divergence, held-out choices": """
from math import comb
import numpy as np
assert abs(shown[0] - (1 - comb(13, 4) / comb(16, 4))) < 1e-12
assert set(runs["run"]) >= {"dense"} and len(pruned) and len(dense)
parallel, cost, diagnostics, over, adjusted = shown[1:]
assert {"pass_at_k", "maj_at_k", "coverage"} <= set(parallel.columns)
for _, row in parallel[parallel["k"] == 1].iterrows():  # pass@1 = the mean over problems of c / n
    part = runs[(runs["run"] == row["run"]) & (runs["budget"] == row["budget"])]
    assert abs(row["pass_at_k"] - part.groupby("problem_id")["correct"].mean().mean()) < 1e-9
assert set(cost["run"]) == set(runs["run"])
for (run, budget), row in diagnostics.set_index(["run", "budget"]).iterrows():
    part = runs[(runs["run"] == run) & (runs["budget"] == budget)]
    assert abs(row["accuracy"] - part["correct"].mean()) < 1e-9
assert over["n"] > 0 and over["ci_low"] <= over["diff"] <= over["ci_high"]
assert np.allclose(adjusted, [0.03, 0.06, 0.06])  # Holm by hand: 3 x 0.01, max(2 x 0.03, .03), max(0.04, .06)
""",
    "Results a skeptical reviewer accepts: seed variance, power, the scaling slope, failure classes": """
variance, paired, power, slopes, slope_tests, failures, deltas, decision = shown
dense = runs[runs["run"] == "dense"]
assert not variance.empty and not paired.empty and not power.empty and not slopes.empty
assert not slope_tests.empty and not failures.empty and not deltas.empty
assert set(cell_records["run"]) == {"dense"} and cell_records["benchmark"].nunique() == 1
assert set(decision) >= {"next_seeds"} and isinstance(decision["next_seeds"], list)
""",
}


def home(tmp_path: Path, with_store: bool) -> Path:
    """A TTS_PRUNE_HOME with the checkout's embedded models and benchmark files (read-only inputs) linked in."""
    (tmp_path / "models").mkdir(parents=True)
    (tmp_path / "models" / "embedded").symlink_to(ROOT / "models" / "embedded", target_is_directory=True)
    (tmp_path / "data").symlink_to(ROOT / "data", target_is_directory=True)
    if with_store:
        from tests.study.test_report_stats import synthetic_store

        synthetic_store(tmp_path / "results" / "default" / "records")
    return tmp_path


def test_every_block_has_a_check():
    assert [heading for heading, _ in blocks()] == list(CHECKS)


@pytest.mark.parametrize("heading", list(CHECKS))
def test_readme_block_runs_and_shows_what_it_says(heading, tmp_path):
    code = dict(blocks())[heading]
    where = home(tmp_path / "home", with_store="results/default/records" in code)
    (tmp_path / "block.py").write_text(code)
    (tmp_path / "check.py").write_text(CHECKS[heading])
    (tmp_path / "runner.py").write_text(RUNNER)
    env = {**os.environ, "TTS_PRUNE_HOME": str(where), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, str(tmp_path / "runner.py"), str(tmp_path / "block.py"),
                          str(tmp_path / "check.py")], cwd=where, env=env, capture_output=True, text=True)
    assert run.returncode == 0 and "README BLOCK OK" in run.stdout, f"{heading}:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"
