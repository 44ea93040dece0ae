"""The study grid: a YAML file -> a validated ``StudyConfig`` -> cells, one per executed notebook.

A study file declares the grid (models, methods, allocations, sparsities, budgets, benchmarks,
samples, seeds, backend); ``expand`` turns it into cells, one per (notebook, value of each axis that
notebook varies over), each writing under a path built from *every* axis value, so two cells can
never write the same file and an input notebook is never overwritten.

The cells form a DAG (``Cell.needs``): a pruned 04-tts-scaling cell evaluates the model that the
03-pruning cell of the same (model, method, allocation, sparsity) saved, so it needs that cell (and the
03 cell is part of the study even where 03-pruning is not listed); the dense baseline, 01 and 02 need
nothing; 05-report needs every 03 and 04 cell (it reads their results and tables).

A 04-tts-scaling cell is one *model variant* (a model and a recipe, or the dense model): the study's
benchmarks are its ``benchmarks`` parameter, evaluated one after another with one model load and one
backend (one vLLM engine start), not an axis of cells that would load and start the same weights once
per benchmark.
"""
from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass
from itertools import product
from pathlib import Path

from .. import paths
from ..models.runtime import AUTO
from ..pruning.recipe import DENSE, RECIPE_AXES  # noqa: F401  (RECIPE_AXES: the runner's public name too)

from .config import (CALIBRATION_AXES, GRID_KEYS, METHOD_AXES, NOTEBOOK_AXES,  # noqa: F401  (public here too)
                     StudyConfig, _coerce, load_study)

# The DAG: 03 saves a pruned model, 04 evaluates it, 05 summarises; RECIPE_AXES (pruning/recipe.py) tie a 04
# cell to its 03 cell; DENSE, the unpruned baseline of 04-tts-scaling, is one cell per model.
PRODUCER, CONSUMER, SUMMARY = "03-pruning", "04-tts-scaling", "05-report"


# ------------------------------------------------------------------------------------------ cells
@dataclass(frozen=True)
class Cell:
    """One executed notebook of the grid."""

    notebook: str          # notebook stem, e.g. "04-tts-scaling"
    axes: dict             # the axis values that identify this cell
    parameters: dict       # everything papermill injects
    output: Path           # executed notebook (.ipynb); the HTML sits beside it
    needs: tuple[str, ...] = ()  # keys of the cells whose outputs this one reads
    after: tuple[str, ...] = ()  # keys of cells that must finish first; an order, not an input (not fingerprinted)

    @property
    def key(self) -> str:
        """The cell's identity in the DAG: ``<notebook>/<k=v__...>`` (its output path, study-relative)."""
        return f"{self.notebook}/{self.output.stem}"

    @property
    def html(self) -> Path:
        return self.output.with_suffix(".html")

    @property
    def marker(self) -> Path:
        return self.output.with_suffix(".done.json")

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.axes.items()) or "all runs"


def slug(value) -> str:
    """A file-name-safe form of a parameter value; long values keep a hash so they stay distinct."""
    text = re.sub(r"[^A-Za-z0-9.+-]+", "-", str(value)).strip("-") or "x"
    if len(text) > 48:
        text = f"{text[-36:].lstrip('-')}-{hashlib.sha1(str(value).encode()).hexdigest()[:8]}"
    return text


def cell_path(reports: Path, study: str, notebook: str, axes: dict) -> Path:
    """reports/<study>/<notebook>/<k=v__k=v...>.ipynb from every axis value (never the input path)."""
    stem = "__".join(f"{k}={slug(v)}" for k, v in axes.items()) or "all"
    return reports / study / notebook / f"{stem}.ipynb"


def _benchmarks(cfg: StudyConfig) -> tuple[str, ...]:
    present = tuple(b for b in cfg.optional_benchmarks if benchmark_available(b))
    return tuple(dict.fromkeys(cfg.benchmarks + present))


def benchmark_available(name: str) -> bool:
    """True when a benchmark can load here: its files are in data/benchmarks/ (`make data`), or it is procedural."""
    from ..tts.benchmarks import BENCHMARKS, available

    return name not in BENCHMARKS or available(name)


def _axis_values(cfg: StudyConfig, notebook: str) -> list[dict]:
    from ..pruning.methods import reads, structured

    combos = []
    if notebook == "04-tts-scaling":  # the dense baseline first, once per model; no benchmark: nothing to evaluate
        if not _benchmarks(cfg):
            return []
        combos.append(dict(method=DENSE, allocation="uniform", sparsity=0.0))
    methods = cfg.tts_methods if notebook == "04-tts-scaling" and cfg.tts_methods is not None else cfg.methods
    values = {"method": methods, "allocation": cfg.allocations, "sparsity": cfg.sparsities}
    axes = [a for a in NOTEBOOK_AXES[notebook] if a != "model"]
    extra = [(axis, getattr(cfg, key)) for axis, key in CALIBRATION_AXES.items()
             if notebook in ("03-pruning", "04-tts-scaling") and len(getattr(cfg, key)) > 1]
    for combo in product(*(values[a] for a in axes)):
        row = dict(zip(axes, combo))
        if structured(row.get("method")) and row.get("allocation") != "uniform":
            continue  # ShortGPT removes whole blocks; a layer-wise allocation is meaningless for it
        if reads(row.get("method"), "shortgpt_layers") and cfg.shortgpt_layers and "sparsity" in row:
            if row["sparsity"] != values["sparsity"][0]:
                continue  # by block count: one row per count (sparsity 0 in the path, the count beside it)
            for count in cfg.shortgpt_layers:
                combos.extend(_calibrated({**row, "sparsity": 0.0, "shortgpt_layers": count}, cfg, extra))
            continue
        combos.extend(_calibrated(row, cfg, extra))
    return combos


def _calibrated(row: dict, cfg: StudyConfig, extra: list) -> list[dict]:
    # one row per value of the calibration axes the study varies (for the methods they apply to)
    if not extra or (cfg.calibration_methods is not None and row["method"] not in cfg.calibration_methods):
        return [row]
    return [{**row, **dict(zip([a for a, _ in extra], values))} for values in product(*(v for _, v in extra))]


def expand(study: StudyConfig, reports: Path | None = None, results: Path | None = None,
           figures: Path | None = None, models_out: Path | None = None, show_progress: bool = True) -> list[Cell]:
    """Every cell of the grid, in the order of the walk (notebook by notebook), with unique outputs."""
    reports = Path(reports or paths.REPORTS_DIR)
    results = Path(results or paths.RESULTS_DIR) / study.name
    figures = Path(figures or paths.FIGURES_DIR) / study.name
    models_out = Path(models_out or paths.MODELS_DIR / "pruned") / study.name
    cells: list[Cell] = []
    for notebook in NOTEBOOK_AXES:
        if notebook == "05-report":
            if notebook in study.notebooks:
                cells.append(_cell(study, study, notebook, {}, reports, results, figures, models_out, show_progress))
            continue
        for model in study.models:
            cfg = study.for_model(model)
            rows = _axis_values(cfg, notebook) if notebook in cfg.notebooks else []
            if notebook == PRODUCER:  # the recipes a 04 cell evaluates are pruned here, listed or not
                rows += [r for r in _needed_recipes(cfg) if r not in rows]
            for row in rows:
                cells.append(_cell(study, cfg, notebook, {"model": model, **row}, reports, results, figures,
                                   models_out, show_progress))
    cells = _link(cells)
    seen: dict[Path, Cell] = {}
    for cell in cells:
        if cell.output in seen:
            raise ValueError(f"cells {seen[cell.output].label!r} and {cell.label!r} would both write {cell.output}; "
                             "give the models distinct names (the path is built from every axis value)")
        seen[cell.output] = cell
    return cells


def _needed_recipes(cfg: StudyConfig) -> list[dict]:
    if CONSUMER not in cfg.notebooks:
        return []
    return [r for r in _axis_values(cfg, CONSUMER) if r["method"] != DENSE]


def _link(cells: list[Cell]) -> list[Cell]:
    """Set ``needs``: pruned 04 -> its 03 cell (and its ``pruned_model`` = that cell's ``model_out``);
    05 -> every 03 and 04 cell. 03 cells always save their model, since 04 reads it. A pruned 04 cell also
    runs ``after`` the dense 04 cell of its model (same benchmarks): its divergence step reads the dense traces
    from the store, which the walk's order guaranteed and cells run side by side must too."""
    def recipe(cell):  # the recipe axes, and the calibration axes where the study varies them
        return tuple(cell.axes.get(k) for k in RECIPE_AXES + tuple(CALIBRATION_AXES) + ("shortgpt_layers",))

    producers = {recipe(c): c for c in cells if c.notebook == PRODUCER}
    linked = []
    for cell in cells:
        if cell.notebook == PRODUCER:
            cell = dataclasses.replace(cell, parameters={**cell.parameters, "save_model": True})
        elif cell.notebook == CONSUMER and cell.axes["method"] != DENSE:
            source = producers[recipe(cell)]
            dense = tuple(c.key for c in cells if c.notebook == CONSUMER and c.axes["method"] == DENSE
                          and c.axes["model"] == cell.axes["model"] and c.axes.get("benchmark") == cell.axes.get("benchmark"))
            cell = dataclasses.replace(cell, needs=(source.key,), after=dense,
                                       parameters={**cell.parameters, "pruned_model": source.parameters["model_out"]})
        elif cell.notebook == SUMMARY:
            cell = dataclasses.replace(cell, needs=tuple(c.key for c in cells if c.notebook in (PRODUCER, CONSUMER)))
        linked.append(cell)
    return linked


def _cell(study, cfg, notebook, axes, reports, results, figures, models_out, show_progress) -> Cell:
    output = cell_path(reports, study.name, notebook, axes)
    if output.resolve().parent == paths.NOTEBOOKS_DIR.resolve():
        raise ValueError(f"output {output} would overwrite an input notebook; use a reports folder")
    rel = output.relative_to(reports / study.name).with_suffix("")
    if notebook == PRODUCER:  # self-traces calibration in 03 generates on this benchmark's training problems
        axes_extra = {"benchmark": (_benchmarks(cfg) or ("",))[0]}
    else:
        axes_extra = {}
    calibration = {"calibration": cfg.calibration[0], "calibration_seed": cfg.calibration_seeds[0]}
    calibration.update({k: v for k, v in axes.items() if k in CALIBRATION_AXES})
    parameters = {"threads": AUTO, **cfg.params, **axes_extra, **axes,  # without params.threads: every core
                  "benchmarks": list(_benchmarks(cfg)),  # 04 evaluates them all on one engine
                  "budgets": list(cfg.budgets), "samples": cfg.samples, "seeds": list(cfg.seeds),
                  "temperature": cfg.temperature, "backend": cfg.backend, "limit": cfg.limit or 0,
                  "thinking_format": cfg.thinking_format or "", "answer_tokens": cfg.answer_tokens,
                  "grading": list(cfg.grading), "judge": dict(cfg.judge or {}),
                  "max_gen_tokens": cfg.max_gen_tokens or 0,  # papermill literal: 0 is None
                  **calibration, "seed": calibration["calibration_seed"],  # 03-pruning names it `seed`
                  "nsamples": cfg.nsamples, "seqlen": cfg.seqlen,
                  "dtype": cfg.dtype, "study": study.name, "study_name": study.name, "show_progress": show_progress,
                  "results_dir": str(results / "records"), "artifacts_root": str(results / "artifacts"),
                  "artifacts_dir": str(results / "artifacts" / rel), "figures_dir": str(figures / rel),
                  "model_out": str(models_out / rel),
                  "model_artifacts": str(models_out / "artifacts")}  # saved copies vLLM loads (not a notebook parameter)
    if notebook in (PRODUCER, CONSUMER) and axes.get("method") != DENSE:  # e.g. ShortGPT's own calibration
        parameters.update(cfg.method_params.get(axes.get("method"), {}))
        parameters.update({k: v for k, v in axes.items() if k in CALIBRATION_AXES})  # a varied axis still wins
        parameters["seed"] = parameters["calibration_seed"]
    return Cell(notebook, axes, parameters, output)
