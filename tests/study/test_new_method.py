"""Adding a pruning method is one class and one registry entry: it then reaches the ``prune`` CLI, the study
grid and the held-out selection search without any other edit."""
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tests.conftest import tiny_model
from tts_prune import PRUNERS, PruneConfig
from tts_prune.pruning.declare import Method
from tts_prune.pruning.kernels import matrix_mask
from tts_prune.study import grid, selection


@dataclass(frozen=True)
class Largest:
    """A deliberately bad method: zero the *largest* |W| of each matrix (round(numel x s) of them)."""

    def __call__(self, weight, stats, sparsity, config):
        score = -weight.detach().float().abs()
        return None, matrix_mask(score, sparsity, round(score.numel() * sparsity))


@pytest.fixture
def largest(monkeypatch):
    monkeypatch.setitem(PRUNERS, "largest", Method(Largest(), needs_data=False))  # the one registry entry
    return "largest"


def _zeroed_are_the_largest(dense: torch.Tensor, pruned: torch.Tensor) -> bool:
    # independent of the kernel: every zeroed weight is at least as large as every kept one
    zero = pruned == 0
    return bool(zero.any()) and float(dense.abs()[zero].min()) >= float(dense.abs()[~zero].max())


def test_the_cli_offers_and_parses_it(largest, capsys):
    import argparse

    from tts_prune.cli import main
    from tts_prune.pruning.cli import add_arguments, config_from

    with pytest.raises(SystemExit):
        main(["prune", "--help"])
    assert "largest" in capsys.readouterr().out
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = config_from(parser.parse_args(["--method", largest, "--sparsity", "0.3", "--allocation", "owl",
                                            "--out", "x"]))
    assert (config.method, config.sparsity, config.allocation, config.owl_lambda) == (largest, 0.3, "owl", 0.08)
    assert (config.calibration, config.nsamples) == ("gsm8k", 128)  # no defaults declared: the shared reference ones


def test_a_study_grid_expands_it(largest):
    study = grid.StudyConfig(name="t", models=("m",), methods=(largest,), allocations=("uniform", "owl"),
                             sparsities=(0.3,), notebooks=("03-pruning", "04-tts-scaling"))
    cells = grid.expand(study, reports=Path("/r"), results=Path("/s"), figures=Path("/f"), models_out=Path("/m"))
    runs = {(c.notebook, c.axes["method"], c.axes["allocation"]) for c in cells}
    assert runs == {("03-pruning", largest, "uniform"), ("03-pruning", largest, "owl"),
                    ("04-tts-scaling", "dense", "uniform"), ("04-tts-scaling", largest, "uniform"),
                    ("04-tts-scaling", largest, "owl")}


def test_the_selection_search_prunes_with_it(largest):
    model = tiny_model("llama")
    dense = {n: p.detach().clone() for n, p in model.named_parameters() if n.endswith("proj.weight")}
    ids = torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(0))
    config = PruneConfig(method=largest, sparsity=0.3, allocation="owl")
    seen = {}

    def score(pruned, candidate):
        weights = {n: p for n, p in pruned.named_parameters() if n in dense}
        assert all(_zeroed_are_the_largest(dense[n], w) for n, w in weights.items())  # the new method ran
        seen[candidate["owl_lambda"]] = [float((w == 0).float().mean()) for n, w in sorted(weights.items())]
        return candidate["owl_lambda"]

    chosen, table = selection.select(model, None, config, {"owl_lambda": [0.02, 0.2]}, ids, score)
    assert chosen == {"owl_lambda": 0.2} and table["valid"].all()
    assert seen[0.02] != seen[0.2]  # each candidate prunes another model
    assert all(float((p != 0).float().mean()) == 1.0 for n, p in model.named_parameters() if n in dense)
