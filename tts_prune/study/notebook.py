"""Helpers the notebooks call: output folders, the calibration / held-out token ids, and the model that
04-tts-scaling evaluates (the one 03-pruning saved, never pruned a second time)."""
from __future__ import annotations

import json
from pathlib import Path

from .. import paths
from ..pruning.recipe import Recipe, record_recipe


def output_dir(given: str, default: Path) -> Path:
    """A notebook's output folder: the runner's (``given``) or, run by hand, a ``lab`` default."""
    return paths.ensure(Path(given) if given else Path(default))


def pruned_model_dir(given: str, model: str, recipe: Recipe) -> Path:
    """Where 03-pruning saves a pruned model and 04-tts-scaling reads it: the runner's path (``given``) or,
    run by hand, ``models/pruned/lab/<model>/<recipe slug>`` (so 03 then 04 in the lab match, per model)."""
    from .grid import slug

    return Path(given) if given else paths.MODELS_DIR / "pruned" / "lab" / slug(model) / recipe.slug


def evaluated_model(model: str, pruned_model: str = "", dtype: str = "auto", recipe: Recipe | None = None,
                    ignore=(), **expected):
    """(net, tokenizer, record recipe) for 04-tts-scaling: ``model`` itself for the dense recipe, else the model
    03-pruning saved in ``pruned_model`` (see ``pruned_model_dir``).

    ``recipe`` is the :class:`~tts_prune.pruning.recipe.Recipe` this cell asks for (04 builds it from its
    parameters with ``lab_config``, as 03 does); it must equal the one saved in ``pruning_recipe.json``, except
    the fields named in ``ignore`` (what 03's held-out selection chose itself). Without ``recipe``, ``expected``
    names a few settings (method, allocation, sparsity, ...) that must equal the saved ``config``. The loaded
    weights must have the recipe's ``pruned_fingerprint``, so a stale or foreign directory is refused instead
    of evaluated under the wrong label. The third value is what the records store (``record_recipe``).
    """
    from ..models.loading import load_model, model_fingerprint
    from ..pruning.config import PruneConfig

    wanted = recipe or Recipe(**{k: expected[k] for k in ("method", "allocation", "sparsity") if k in expected})
    if wanted.is_dense:
        net, tokenizer = load_model(model, dtype=dtype)
        return net, tokenizer, record_recipe(wanted)
    folder = pruned_model_dir(pruned_model, model, wanted)
    recipe_file = folder / "pruning_recipe.json"
    if not recipe_file.is_file():
        raise FileNotFoundError(f"no pruned model at {folder} (no pruning_recipe.json); run 03-pruning with "
                                f"{expected or wanted.to_dict()} and save_model=True first, or pass "
                                "pruned_model=<its model_out>")
    saved = json.loads(recipe_file.read_text())
    found = Recipe.from_dict(saved["recipe"]) if "recipe" in saved else Recipe.from_config(PruneConfig(**saved["config"]))
    if recipe is not None:
        wrong = recipe.differences(found, ignore=ignore)
    else:
        wrong = {k: (v, saved["config"].get(k)) for k, v in expected.items() if saved["config"].get(k) != v}
    if wrong:
        raise ValueError(f"{folder} was pruned with other settings: " + ", ".join(
            f"{k}: wanted {a!r}, saved {b!r}" for k, (a, b) in wrong.items()) + "; rerun 03-pruning for this recipe")
    net, tokenizer = load_model(folder, dtype=dtype)
    if model_fingerprint(net) != saved["pruned_fingerprint"]:
        raise ValueError(f"the weights in {folder} do not match its pruning_recipe.json (fingerprint "
                         f"{model_fingerprint(net)} vs {saved['pruned_fingerprint']}); it was changed after "
                         "saving or loaded in another dtype: rerun 03-pruning, and give 03 and 04 the same dtype")
    return net, tokenizer, record_recipe(found, saved)


def calibration_ids(tokenizer, source: str, nsamples: int, seqlen: int, seed: int = 0, **context):
    """Calibration token ids (nsamples, seqlen) for the notebooks: any source ``tts_prune.calibration_batches``
    reads (its one registry, ``pruning.windows.TEXT_SOURCES``: gsm8k, builtin, toy-reasoning, ...; a text/JSONL
    path; an HF dataset id), ``self-traces`` included (registered by ``study.self_traces``).

    ``self-traces`` needs ``context``: ``model`` (the *dense* model, before pruning), ``benchmark`` (its
    training split is used), ``budget`` (thinking tokens per trace), ``store`` (where the traces are kept) and
    optionally ``evaluate_options`` for ``tts_prune.evaluate`` (the study's thinking_format, answer_tokens);
    other sources ignore it."""
    from ..pruning.calibration import calibration_batches
    from . import self_traces  # noqa: F401  (registers "self-traces")

    return calibration_batches(tokenizer, source, nsamples=nsamples, seqlen=seqlen, seed=seed, **context)


def _toy_heldout(tokenizer, max_tokens: int) -> tuple[list[int], list[bool]]:
    # The toy reasoner's perplexity on GSM8K text (characters it never saw) is in the tens of thousands and says
    # nothing about pruning damage. It is measured on *test* problems of its task, rendered as its training
    # renders them and scoring the tokens its training loss scored (the assistant turn; the prompt is context).
    from ..models.toy import training_example
    from ..models.toy_task import make_problems

    ids: list[int] = []
    scored: list[bool] = []
    for problem in make_problems(max(16, max_tokens // 16), seed=0, split="test"):
        example, labels = training_example(tokenizer, problem, cut=None)
        ids += example
        scored += [label != -100 for label in labels]
        if len(ids) >= max_tokens:
            break
    return ids, scored


HELDOUT = {"toy-reasoning": _toy_heldout}


def heldout(tokenizer, source: str = "", max_tokens: int = 4096):
    """Held-out ``(ids, scored)`` for ``tts_prune.perplexity(..., scored=scored)``: ids (n,) and, per token,
    whether it counts (None: every token). ``source``: ``toy-reasoning`` (the toy task's *test* split, its
    assistant turns scored), a text/JSONL path, or empty: the GSM8K *test* solutions (calibration draws from
    GSM8K *train*), else the bundled ``builtin`` text."""
    import torch

    from ..pruning.calibration import calibration_texts

    if not source:
        test = [d / "gsm8k_test.jsonl" for d in (paths.BENCHMARK_DIR, paths.SHARED_BENCHMARK_DIR)]
        source = next((str(p) for p in test if p.exists()), "builtin")
    if source in HELDOUT:
        ids, scored = HELDOUT[source](tokenizer, max_tokens)
        return (torch.tensor(ids[:max_tokens], dtype=torch.long), torch.tensor(scored[:max_tokens], dtype=torch.bool))
    ids = []
    for text in calibration_texts(source):
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        if len(ids) >= max_tokens:
            break
    if len(ids) < 2:
        raise ValueError(f"held-out source {source!r} gave {len(ids)} tokens; pass a text/JSONL file with more text")
    return torch.tensor(ids[:max_tokens], dtype=torch.long), None


def benchmark_dir(root, benchmark: str) -> Path:
    """``root/<benchmark>``: one benchmark's figures or tables inside a 04-tts-scaling cell's folders, which hold
    every benchmark of the cell (one model variant, evaluated on all of them with one engine)."""
    from .grid import slug

    return paths.ensure(Path(root) / slug(benchmark))
