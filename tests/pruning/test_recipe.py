"""Recipe: one validated record of what a pruned model is; PruneConfig's fields all declared once."""
import dataclasses
import hashlib
import json

import pytest

from tts_prune import ALLOCATORS, PRUNERS, PruneConfig
from tts_prune.pruning.config import CORE, declarations
from tts_prune.pruning.recipe import DENSE, Recipe, lab_config, lab_recipe, record_recipe, run_label


def test_every_config_field_is_declared_once_and_every_declaration_is_a_field():
    names = [f.name for f in dataclasses.fields(PruneConfig)]
    declared = declarations()
    assert set(declared) == set(names)
    owners = {name: [o for o in rest] for name, (_, *rest) in declared.items()}
    assert owners["owl_m"] == [("allocation", "owl")] and owners["shortgpt_layers"] == [("method", "shortgpt")]
    assert sorted(o for _, o in owners["nm"]) == ["magnitude", "sparsegpt", "wanda"]
    assert {p.name for p in CORE} & {p.name for m in PRUNERS.values() for p in m.params} == set()


def test_searchable_parameters_are_what_each_allocation_reads():
    assert ALLOCATORS["owl"].searchable == ("owl_lambda", "owl_m")
    assert ALLOCATORS["alphapruning"].searchable == ("alpha_eps",)
    assert ALLOCATORS["layerif-block"].searchable == ("layerif_eps",)
    assert ALLOCATORS["layerif"].searchable == () and ALLOCATORS["uniform"].searchable == ()
    # each searched name is a field the allocation's own function reads (grep of its source, independent)
    import inspect

    from tts_prune.pruning import allocation
    for name in ("owl", "alphapruning", "layerif-block"):
        source = inspect.getsource(getattr(allocation, ALLOCATORS[name].fn.__name__))
        assert all(f"config.{p}" in source for p in ALLOCATORS[name].searchable), name


def test_method_defaults_come_from_the_declarations():
    config = PruneConfig(method="magnitude", sparsity=0.2, allocation="owl")
    assert (config.calibration, config.nsamples, config.seqlen, config.owl_clip) == ("gsm8k", 128, 2048, "zero")
    assert (config.layerif_eps, config.alpha_eps) == (0.3, 0.3)
    short = PruneConfig(method="shortgpt", shortgpt_layers=1)
    assert (short.calibration, short.nsamples, short.seqlen, short.alpha_eps) == ("shortgpt", 100, 1024, None)
    with pytest.raises(ValueError, match=r"nm='2:4' with method='shortgpt'.*method='magnitude' or method='wanda'"):
        PruneConfig(method="shortgpt", sparsity=0.5, nm="2:4")


def test_recipe_key_slug_label_and_dense():
    recipe = Recipe.from_config(PruneConfig(method="wanda", sparsity=0.2, allocation="owl", nsamples=4, seqlen=32))
    assert dict(recipe.params) == {"nm": None, "wanda_scope": "row", "owl_lambda": 0.08, "owl_m": 5.0,
                                   "owl_clip": "reference"}
    canonical = json.dumps({"method": "wanda", "allocation": "owl", "sparsity": 0.2, "shortgpt_layers": None,
                            "calibration": "gsm8k", "seed": 0, "nsamples": 4, "seqlen": 32,
                            "params": sorted([["nm", None], ["owl_clip", "reference"], ["owl_lambda", 0.08],
                                              ["owl_m", 5.0], ["wanda_scope", "row"]])},
                           sort_keys=True, separators=(",", ":"))
    assert recipe.key == hashlib.sha256(canonical.encode()).hexdigest()[:16]
    assert (recipe.slug, recipe.label, recipe.is_dense) == ("wanda-owl-0.2", "wanda/owl/0.2", False)
    assert Recipe.from_dict(json.loads(json.dumps(recipe.to_dict()))) == recipe
    assert dataclasses.replace(recipe, seed=1).key != recipe.key
    dense = Recipe()
    assert (dense.is_dense, dense.slug, dense.label, dense.method) == (True, DENSE, DENSE, DENSE)
    by_count = Recipe.from_config(PruneConfig(method="shortgpt", shortgpt_layers=2))
    assert (by_count.slug, by_count.label, by_count.sparsity) == ("shortgpt-uniform-2L", "shortgpt/-2L", None)
    assert run_label("shortgpt", "uniform", 0.1, removed=0.0714) == "shortgpt/uniform/0.1 (removed 7.1%)"
    with pytest.raises(ValueError, match="method='dense' with allocation='owl'"):
        Recipe(allocation="owl")
    with pytest.raises(ValueError, match=r"method='obs' is unknown; allowed: \['dense', 'magnitude'"):
        Recipe(method="obs")


def test_record_recipe_keeps_the_records_fields():
    saved = {"global_sparsity": 0.49, "removed_layers": [], "removed_param_fraction": None}
    recipe = Recipe.from_config(PruneConfig(method="wanda", sparsity=0.5, allocation="owl", nsamples=4, seqlen=32, seed=3))
    assert record_recipe(recipe, saved) == {
        "method": "wanda", "allocation": "owl", "sparsity": 0.5, "achieved_sparsity": 0.49, "removed_layers": [],
        "removed_param_fraction": None, "calibration": "gsm8k", "calibration_seed": 3, "nsamples": 4, "seqlen": 32}
    assert list(record_recipe(recipe, saved)) == ["method", "allocation", "sparsity", "achieved_sparsity",
                                                  "removed_layers", "removed_param_fraction", "calibration",
                                                  "calibration_seed", "nsamples", "seqlen"]
    assert record_recipe(Recipe()) == {"method": "dense", "allocation": "uniform", "sparsity": 0.0}


def test_lab_config_is_the_one_place_of_the_notebook_rules():
    config = lab_config("wanda", 0.05, "owl", nsamples=8, seqlen=16, owl_lambda=0.08, layerif_eps=0)
    assert config.owl_lambda == 0.05  # capped at the sparsity, as in the OWL paper
    assert config.layerif_eps == 0.1  # 0 is "unset": the method's reference value
    assert lab_config("wanda", 0.2, "owl", layerif_scores="x.pkl").layerif_scores is None  # layerif's only
    assert lab_config("wanda", 0.2, "layerif", layerif_samples=16, nsamples=4).layerif_samples == 4
    short = lab_config("shortgpt", 0.2, shortgpt_layers=2)
    assert (short.sparsity, short.shortgpt_layers) == (None, 2)
    assert lab_recipe("dense", 0.2, "uniform") == Recipe()
    recipe = Recipe.from_config(PruneConfig(method="wanda", sparsity=0.2, allocation="owl", owl_lambda=0.08, owl_m=7))
    other = Recipe.from_config(PruneConfig(method="wanda", sparsity=0.2, allocation="owl", owl_lambda=0.04, owl_m=7))
    assert recipe.differences(other) == {"owl_lambda": (0.08, 0.04)}
    assert recipe.differences(other, ignore=["owl_lambda"]) == {}
