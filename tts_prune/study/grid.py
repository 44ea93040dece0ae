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
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

import yaml

from .. import paths
from ..models.runtime import AUTO, resolve_threads
from ..pruning.recipe import DENSE, RECIPE_AXES  # noqa: F401  (RECIPE_AXES: the runner's public name too)

# Which grid axes each notebook varies over (its other parameters are passed unchanged to every cell).
# Order is the order of the walk; a notebook with no axis runs once per study.
NOTEBOOK_AXES: dict[str, tuple[str, ...]] = {
    "01-calibration": ("model",),
    "02-allocation": ("model", "sparsity"),
    "03-pruning": ("model", "method", "allocation", "sparsity"),
    "04-tts-scaling": ("model", "method", "allocation", "sparsity"),  # + every benchmark, inside the cell
    "05-report": (),
}
# The DAG: 03 saves a pruned model, 04 evaluates it, 05 summarises; RECIPE_AXES (pruning/recipe.py) tie a 04
# cell to its 03 cell; DENSE, the unpruned baseline of 04-tts-scaling, is one cell per model.
PRODUCER, CONSUMER, SUMMARY = "03-pruning", "04-tts-scaling", "05-report"


@dataclass(frozen=True)
class StudyConfig:
    """One study grid; ``overrides`` maps a model to the keys that differ for it (incl. ``notebooks``)."""

    name: str
    models: tuple[str, ...]
    description: str = ""
    notebooks: tuple[str, ...] = tuple(NOTEBOOK_AXES)
    methods: tuple[str, ...] = ("magnitude", "wanda")
    tts_methods: tuple[str, ...] | None = None  # methods 04-tts-scaling evaluates besides dense; None: methods
    allocations: tuple[str, ...] = ("uniform",)
    sparsities: tuple[float, ...] = (0.1, 0.2)
    benchmarks: tuple[str, ...] = ("gsm8k",)
    optional_benchmarks: tuple[str, ...] = ()  # run only where `make data` put their files
    budgets: tuple[int, ...] = (512, 1024, 2048, 4096, 8192)
    samples: int = 1
    seeds: tuple[int, ...] = (0,)
    temperature: float = 0.0  # 0 = greedy
    thinking_format: str | None = None  # s1, qwen3, r1, generic, toy; None: detected (name it per model in overrides)
    answer_tokens: int = 4096  # the answer's own budget after the end of thinking (s1 leaves it thousands)
    grading: tuple[str, ...] = ("kit",)  # grading protocol(s): kit, s1-harness (the paper's harness rules); each record under each
    judge: dict = field(default_factory=dict)  # s1-harness judge {base_url, model, api_key_env}; {}: offline fallback
    max_gen_tokens: int | None = None  # s1 harness's answer allowance (max_gen_toks, 32768); replaces answer_tokens
    backend: str = "auto"
    limit: int | None = None  # problems per benchmark; None = all
    calibration: tuple[str, ...] = ("gsm8k",)  # calibration sources; more than one makes it an axis of 03/04
    calibration_seeds: tuple[int, ...] = (0,)  # seeds of the calibration windows; more than one: an axis of 03/04
    calibration_methods: tuple[str, ...] | None = None  # methods those two axes apply to (None: all); others: first values
    nsamples: int = 128
    seqlen: int = 2048
    dtype: str = "auto"
    shortgpt_layers: tuple[int, ...] = ()  # ShortGPT by block count (one recipe per count) instead of its sparsities
    method_params: dict = field(default_factory=dict)  # per method, parameters of its 03/04 cells (e.g. calibration)
    params: dict = field(default_factory=dict)  # extra notebook parameters, passed to every cell
    overrides: dict = field(default_factory=dict)

    def __post_init__(self):
        def fail(what, allowed, fix):
            raise ValueError(f"study {self.name!r}: {what}; allowed: {allowed}. {fix}")

        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", str(self.name)):
            fail(f"name={self.name!r}", "letters, digits, '.', '_', '-'", "It names the reports folder.")
        if not self.models:
            fail("models is empty", "a list of model references", "Add e.g. models: [smollm2-135m-instruct].")
        from ..pruning.allocation import ALLOCATORS
        from ..pruning.methods import reads

        grid_allocations = sorted(name for name, a in ALLOCATORS.items() if a.in_grid)
        if set(self.allocations) - set(grid_allocations):
            fail(f"allocations={list(self.allocations)}", grid_allocations,
                 "layerif is the paper's LayerIF (attention and MLP apart), layerif-block the block-wise approximation.")
        for nb in self.notebooks:
            if nb not in NOTEBOOK_AXES:
                fail(f"notebook {nb!r} is unknown", list(NOTEBOOK_AXES), "Use the notebook file stems.")
        for s in self.sparsities:
            if not 0 <= s < 1:
                fail(f"sparsity {s}", "floats in [0, 1)", "E.g. sparsities: [0.1, 0.2].")
        if not self.budgets or any(int(b) < 0 for b in self.budgets):
            fail(f"budgets={list(self.budgets)}", "token counts >= 0 (0: no thinking)", "E.g. budgets: [512, 1024].")
        if not self.calibration or not self.calibration_seeds:
            fail(f"calibration={list(self.calibration)}, calibration_seeds={list(self.calibration_seeds)}",
                 "at least one source and one seed", "E.g. calibration: [gsm8k, self-traces], calibration_seeds: [0].")
        if self.thinking_format is not None:
            from ..tts.formats import FORMATS

            if self.thinking_format not in FORMATS:
                fail(f"thinking_format={self.thinking_format!r}", sorted(FORMATS), "Name the model's format, e.g. s1.")
        if self.answer_tokens < 1:
            fail(f"answer_tokens={self.answer_tokens}", "a positive token count", "E.g. answer_tokens: 4096.")
        try:
            from ..tts.judge import JudgeConfig
            from ..tts.regrade import protocols_of

            protocols_of(self.grading)
            JudgeConfig.from_dict(dict(self.judge or {}))
        except ValueError as error:
            fail(f"grading={list(self.grading)}, judge={self.judge}", "grading: kit and/or s1-harness; judge: "
                 "{base_url, model, api_key_env} or {}", f"E.g. grading: [kit, s1-harness]. ({error})")
        if self.samples < 1 or not self.seeds:
            fail(f"samples={self.samples}, seeds={list(self.seeds)}", "samples >= 1 and >= 1 seed", "Fix them.")
        if "threads" in self.params:
            try:
                resolve_threads(self.params["threads"])
            except ValueError as error:
                fail(f"params.threads={self.params['threads']!r}", "'auto' or a positive integer",
                     f"'auto' uses every core this process may use; 1 suits a shared machine. ({error})")
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in self.shortgpt_layers):
            fail(f"shortgpt_layers={list(self.shortgpt_layers)}", "whole numbers of blocks >= 1",
                 "E.g. shortgpt_layers: [1, 2, 3] as the authors' ShortGPT sweep.")
        if self.shortgpt_layers and not any(reads(m, "shortgpt_layers") for m in self.methods + (self.tts_methods or ())):
            fail(f"shortgpt_layers={list(self.shortgpt_layers)} without shortgpt in methods", "shortgpt listed",
                 "Add shortgpt to methods, or drop shortgpt_layers.")
        for method, keys in self.method_params.items():
            if not isinstance(keys, dict) or set(keys) & set(METHOD_AXES):
                fail(f"method_params[{method!r}]={keys!r}", "a mapping of notebook parameters other than the axes "
                     f"{list(METHOD_AXES)}", "E.g. method_params: {shortgpt: {calibration: shortgpt}}.")
        if self.max_gen_tokens is not None and (isinstance(self.max_gen_tokens, bool) or
                                                not isinstance(self.max_gen_tokens, int) or self.max_gen_tokens < 1):
            fail(f"max_gen_tokens={self.max_gen_tokens!r}", "a positive token count or null",
                 "E.g. max_gen_tokens: 32768 (the s1 harness's max_gen_toks).")
        for model, keys in self.overrides.items():
            unknown = set(keys) - set(GRID_KEYS)
            if model not in self.models or unknown:
                fail(f"override for {model!r} with keys {sorted(unknown)}", f"a listed model and keys {GRID_KEYS}",
                     "Override only models listed in `models`, with grid keys.")

    def for_model(self, model: str) -> StudyConfig:
        """This study as seen by one model (its overrides applied)."""
        return dataclasses.replace(self, models=(model,), overrides={}, **_coerce(self.overrides.get(model, {})))


_TUPLE_KEYS = ("models", "notebooks", "methods", "tts_methods", "allocations", "sparsities", "benchmarks", "optional_benchmarks",
               "budgets", "seeds", "calibration", "calibration_seeds", "calibration_methods", "shortgpt_layers", "grading")
METHOD_AXES = ("model", "method", "allocation", "sparsity", "benchmark", "shortgpt_layers", "grading")  # not in method_params
# Axes that only pruning cells (03, and 04 when not dense) vary over, and only when a study lists more than one
# value: a single value keeps the cell paths of studies written before these axes existed.
CALIBRATION_AXES = {"calibration": "calibration", "calibration_seed": "calibration_seeds"}
GRID_KEYS = tuple(f.name for f in dataclasses.fields(StudyConfig) if f.name not in ("name", "models", "overrides",
                                                                                     "description"))


def _coerce(raw: dict) -> dict:
    # YAML lists -> tuples (frozen dataclass), and a scalar where a list is expected -> a 1-tuple.
    out = dict(raw)
    for key in _TUPLE_KEYS:
        if key in out and out[key] is not None:
            out[key] = tuple(out[key]) if isinstance(out[key], (list, tuple)) else (out[key],)
    return out


def load_study(path: str | Path, **changes) -> StudyConfig:
    """Read a study YAML; ``changes`` replace top-level keys (e.g. ``models=["path/to/model"]``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"study file {path} does not exist; pick one of {sorted(map(str, paths.ROOT.glob('studies/*.yaml')))}")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    raw.update({k: v for k, v in changes.items() if v is not None})
    allowed = {f.name for f in dataclasses.fields(StudyConfig)}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; allowed: {sorted(allowed)}. Fix the spelling or remove them.")
    raw.setdefault("name", path.stem)
    if "models" in changes and "overrides" in raw:  # overrides name the file's models; keep those still present
        raw["overrides"] = {m: o for m, o in raw["overrides"].items() if m in raw["models"]}
    return StudyConfig(**_coerce(raw))


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
