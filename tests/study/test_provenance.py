"""05-report's provenance audit: different recipes with identical weights are found, explained where the
recipes explain it, and refused where nothing does (issue 20: LayerIF that silently equalled uniform)."""
import json

import pandas as pd

from tts_prune.report import explorer, provenance


def rec(method, allocation, sparsity, model_hash, problem="p0", **recipe):
    base = {"method": method, "allocation": allocation, "sparsity": sparsity, **recipe}
    return {"model": "toy", "benchmark": "b", "recipe": base, "model_hash": model_hash, "problem_id": problem,
            "seed": 0, "budget": 8, "correct": True}


def summary(method, allocation, sparsity, fingerprint, targets, **extra):
    return {"model": "toy", "method": method, "allocation": allocation, "sparsity": sparsity,
            "pruned_fingerprint": fingerprint, "source_fingerprint": "dense0", "layer_sparsities": targets, **extra}


def test_layerif_equal_to_uniform_is_flagged_with_its_reason(tmp_path):
    records = pd.DataFrame([rec("dense", "uniform", 0.0, "dense0"),
                            rec("magnitude", "uniform", 0.2, "0b732cad", achieved_sparsity=0.2),
                            rec("magnitude", "layerif", 0.2, "0b732cad", achieved_sparsity=0.2),
                            rec("wanda", "uniform", 0.2, "41cb8c0d", achieved_sparsity=0.2)])
    for i, s in enumerate([summary("magnitude", "uniform", 0.2, "0b732cad", [0.2, 0.2, 0.2]),
                           summary("magnitude", "layerif", 0.2, "0b732cad", [0.2, 0.2, 0.2]),
                           summary("wanda", "uniform", 0.2, "41cb8c0d", [0.2, 0.2, 0.2])]):
        folder = tmp_path / "03-pruning" / f"r{i}"
        folder.mkdir(parents=True)
        (folder / "pruning.json").write_text(json.dumps(s))
    summaries = provenance.read_pruning_summaries(tmp_path)
    table = provenance.identical_weights(explorer.runs(records), summaries)
    assert sorted(table["where"]) == ["03 recipes", "records"]
    for row in table.itertuples():
        assert {row.run, row.other} == {"magnitude/uniform/0.2", "magnitude/layerif/0.2"}
        assert row.fingerprint == "0b732cad" and row.explained
        assert row.reason.startswith("layerif allocation equal to uniform (identical per-block targets")
    css = provenance.styled(table).to_html().split("</style>")[0]
    red = css.split("color: #b00020")[0]  # the selectors of the red rule: every cell of both rows
    assert all(f"row{r}_col{c}" in red for r in range(2) for c in range(len(provenance.COLUMNS)))


def test_shortgpt_that_removed_nothing_is_explained_and_a_wrong_model_is_not():
    records = pd.DataFrame([rec("dense", "uniform", 0.0, "dense0"),
                            rec("shortgpt", "uniform", 0.1, "dense0", removed_layers=[], achieved_sparsity=0.0,
                                removed_param_fraction=0.0),
                            rec("wanda", "owl", 0.2, "dense0", achieved_sparsity=0.2)])
    table = provenance.identical_weights(explorer.runs(records))
    pairs = {frozenset((r.run, r.other)): r for r in table.itertuples()}
    short, wanda = "shortgpt/uniform/0.1 (removed 0.0%)", "wanda/owl/0.2"
    assert set(pairs) == {frozenset(p) for p in (("dense", short), ("dense", wanda), (short, wanda))}
    assert pairs[frozenset(("dense", short))].reason.startswith("ShortGPT removed 0 blocks")
    assert pairs[frozenset(("dense", short))].explained
    for pair in (("dense", wanda), (short, wanda)):  # Wanda at 20% cannot have the dense weights
        assert not pairs[frozenset(pair)].explained and pairs[frozenset(pair)].reason.startswith("unexplained")


def test_saved_recipes_alone_flag_a_copy_of_the_dense_weights_and_equal_shortgpt_cells():
    summaries = pd.DataFrame([
        summary("shortgpt", "uniform", 0.1, "s3", [1, 0, 1], removed_layers=[0, 2], shortgpt_layers=None),
        summary("shortgpt", "uniform", 0.0, "s3", [1, 0, 1], removed_layers=[0, 2], shortgpt_layers=2),
        summary("wanda", "layerif", 0.2, "dense0", [0.2, 0.2, 0.2], achieved_sparsity=0.0),
        summary("wanda", "uniform", 0.2, "w", [0.2, 0.2, 0.2])])
    table = provenance.identical_weights(pd.DataFrame({"model": [], "run": []}), summaries)
    pairs = {frozenset((r.run, r.other)): r for r in table.itertuples()}
    assert set(pairs) == {frozenset(("shortgpt/uniform/0.1", "shortgpt/-2L")),
                          frozenset(("wanda/layerif/0.2", "dense"))}
    assert pairs[frozenset(("shortgpt/uniform/0.1", "shortgpt/-2L"))].reason == "ShortGPT removed the same blocks [0, 2] in both"
    assert pairs[frozenset(("wanda/layerif/0.2", "dense"))].reason.startswith("pruned nothing")


def test_distinct_weights_give_an_empty_audit():
    records = pd.DataFrame([rec("dense", "uniform", 0.0, "a"), rec("wanda", "uniform", 0.2, "b"),
                            rec("wanda", "owl", 0.2, "c")])
    table = provenance.identical_weights(explorer.runs(records))
    assert table.empty and list(table.columns) == provenance.COLUMNS


def test_magnitude_recipes_that_differ_only_in_calibration_are_explained():
    summaries = pd.DataFrame([
        summary("magnitude", "alphapruning", 0.2, "m", [0.1, 0.3, 0.2], calibration="gsm8k", calibration_seed=0),
        summary("magnitude", "alphapruning", 0.2, "m", [0.1, 0.3, 0.2], calibration="gsm8k", calibration_seed=1),
        summary("wanda", "uniform", 0.2, "w0", [0.2] * 3, calibration="gsm8k", calibration_seed=0),
        summary("wanda", "uniform", 0.2, "w0", [0.2] * 3, calibration="gsm8k", calibration_seed=1)])
    table = provenance.identical_weights(pd.DataFrame({"model": [], "run": []}), summaries).set_index("run")
    assert table.loc["magnitude/alphapruning/0.2/calibration_seed=0", "reason"] == (
        "magnitude reads no calibration data and the alphapruning targets are identical")
    # Wanda reads its calibration: two seeds with one fingerprint is not explained
    assert not table.loc["wanda/uniform/0.2/calibration_seed=0", "explained"]
