"""The study as a batch job: a YAML grid -> one executed notebook per cell -> HTML reports + index.

A study file declares the grid (models, methods, allocations, sparsities, budgets, benchmarks,
samples, seeds, backend); ``expand`` turns it into cells, one per (notebook, value of each axis that
notebook varies over). Each cell is executed with papermill into the git-ignored ``reports/`` tree at
a path built from *every* axis value, so two cells can never write the same file and an input
notebook is never overwritten. A cell is skipped on rerun when its marker records the same
parameters and the same input notebook; a failing cell stops the run with papermill's error.
Executed notebooks are rendered to HTML with nbconvert and ``reports/index.html`` links them all.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import html
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from . import paths

# Which grid axes each notebook varies over (its other parameters are passed unchanged to every cell).
# Order is the order of the walk; a notebook with no axis runs once per study.
NOTEBOOK_AXES: dict[str, tuple[str, ...]] = {
    "01-calibration": ("model",),
    "02-allocation": ("model", "sparsity"),
    "03-pruning": ("model", "method", "allocation", "sparsity"),
    "04-tts-scaling": ("model", "method", "allocation", "sparsity", "benchmark"),
    "05-report": (),
}
DENSE = "dense"  # the unpruned baseline of 04-tts-scaling: one cell per (model, benchmark)
STRUCTURED_METHODS = ("shortgpt",)  # layer removal: allocation does not apply, only "uniform" is run
KERNEL = "python3"


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
    backend: str = "auto"
    limit: int | None = None  # problems per benchmark; None = all
    calibration: str = "gsm8k"
    nsamples: int = 128
    seqlen: int = 2048
    dtype: str = "auto"
    params: dict = field(default_factory=dict)  # extra notebook parameters, passed to every cell
    overrides: dict = field(default_factory=dict)

    def __post_init__(self):
        def fail(what, allowed, fix):
            raise ValueError(f"study {self.name!r}: {what}; allowed: {allowed}. {fix}")

        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", str(self.name)):
            fail(f"name={self.name!r}", "letters, digits, '.', '_', '-'", "It names the reports folder.")
        if not self.models:
            fail("models is empty", "a list of model references", "Add e.g. models: [smollm2-135m-instruct].")
        for nb in self.notebooks:
            if nb not in NOTEBOOK_AXES:
                fail(f"notebook {nb!r} is unknown", list(NOTEBOOK_AXES), "Use the notebook file stems.")
        for s in self.sparsities:
            if not 0 <= s < 1:
                fail(f"sparsity {s}", "floats in [0, 1)", "E.g. sparsities: [0.1, 0.2].")
        if not self.budgets or any(int(b) < 1 for b in self.budgets):
            fail(f"budgets={list(self.budgets)}", "positive token counts", "E.g. budgets: [512, 1024].")
        if self.samples < 1 or not self.seeds:
            fail(f"samples={self.samples}, seeds={list(self.seeds)}", "samples >= 1 and >= 1 seed", "Fix them.")
        for model, keys in self.overrides.items():
            unknown = set(keys) - set(GRID_KEYS)
            if model not in self.models or unknown:
                fail(f"override for {model!r} with keys {sorted(unknown)}", f"a listed model and keys {GRID_KEYS}",
                     "Override only models listed in `models`, with grid keys.")

    def for_model(self, model: str) -> StudyConfig:
        """This study as seen by one model (its overrides applied)."""
        return dataclasses.replace(self, models=(model,), overrides={}, **_coerce(self.overrides.get(model, {})))


_TUPLE_KEYS = ("models", "notebooks", "methods", "tts_methods", "allocations", "sparsities", "benchmarks", "optional_benchmarks",
               "budgets", "seeds")
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
    from .benchmarks import BENCHMARKS, available

    return name not in BENCHMARKS or available(name)


def _axis_values(cfg: StudyConfig, notebook: str) -> list[dict]:
    combos = []
    if notebook == "04-tts-scaling":  # the dense baseline first, once per (model, benchmark)
        combos += [dict(method=DENSE, allocation="uniform", sparsity=0.0, benchmark=b) for b in _benchmarks(cfg)]
    methods = cfg.tts_methods if notebook == "04-tts-scaling" and cfg.tts_methods is not None else cfg.methods
    values = {"method": methods, "allocation": cfg.allocations, "sparsity": cfg.sparsities,
              "benchmark": _benchmarks(cfg)}
    axes = [a for a in NOTEBOOK_AXES[notebook] if a != "model"]
    for combo in product(*(values[a] for a in axes)):
        row = dict(zip(axes, combo))
        if row.get("method") in STRUCTURED_METHODS and row.get("allocation") != "uniform":
            continue  # ShortGPT removes whole blocks; a layer-wise allocation is meaningless for it
        combos.append(row)
    return combos


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
            if notebook not in cfg.notebooks:
                continue
            for row in _axis_values(cfg, notebook):
                cells.append(_cell(study, cfg, notebook, {"model": model, **row}, reports, results, figures,
                                   models_out, show_progress))
    seen: dict[Path, Cell] = {}
    for cell in cells:
        if cell.output in seen:
            raise ValueError(f"cells {seen[cell.output].label!r} and {cell.label!r} would both write {cell.output}; "
                             "give the models distinct names (the path is built from every axis value)")
        seen[cell.output] = cell
    return cells


def _cell(study, cfg, notebook, axes, reports, results, figures, models_out, show_progress) -> Cell:
    output = cell_path(reports, study.name, notebook, axes)
    if output.resolve().parent == paths.NOTEBOOKS_DIR.resolve():
        raise ValueError(f"output {output} would overwrite an input notebook; use a reports folder")
    rel = output.relative_to(reports / study.name).with_suffix("")
    parameters = {**cfg.params, **axes,
                  "budgets": list(cfg.budgets), "samples": cfg.samples, "seeds": list(cfg.seeds),
                  "temperature": cfg.temperature, "backend": cfg.backend, "limit": cfg.limit or 0,
                  "calibration": cfg.calibration, "nsamples": cfg.nsamples, "seqlen": cfg.seqlen,
                  "dtype": cfg.dtype, "study": study.name, "study_name": study.name, "show_progress": show_progress,
                  "results_dir": str(results / "records"), "artifacts_root": str(results / "artifacts"),
                  "artifacts_dir": str(results / "artifacts" / rel), "figures_dir": str(figures / rel),
                  "model_out": str(models_out / rel)}
    return Cell(notebook, axes, parameters, output)


# ------------------------------------------------------------------------------------------ running
def notebook_parameters(notebook: Path) -> dict:
    """The names declared in a notebook's `parameters` cell (papermill's own parser)."""
    import papermill

    return papermill.inspect_notebook(str(notebook))


# Parameters that change how a run looks, not what it computes: a cell done with a progress bar is done.
_COSMETIC = frozenset({"show_progress"})


def _fingerprint(cell: Cell, source: Path) -> dict:
    parameters = {k: v for k, v in cell.parameters.items() if k not in _COSMETIC}
    return {"parameters": parameters, "notebook_sha256": hashlib.sha256(source.read_bytes()).hexdigest()}


def is_done(cell: Cell, source: Path) -> bool:
    """A cell is done when its marker records these parameters and this input notebook."""
    try:
        return json.loads(cell.marker.read_text())["fingerprint"] == json.loads(json.dumps(_fingerprint(cell, source)))
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        return False


def run_cell(cell: Cell, notebooks: Path | None = None, show_progress: bool = True) -> float:
    """Execute one cell with papermill and render it; returns seconds. Raises papermill's error on failure."""
    import papermill

    source = Path(notebooks or paths.NOTEBOOKS_DIR) / f"{cell.notebook}.ipynb"
    declared = notebook_parameters(source)
    parameters = {k: v for k, v in cell.parameters.items() if k in declared}  # only what the notebook declares
    cell.output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    papermill.execute_notebook(str(source), str(cell.output), parameters=parameters, kernel_name=KERNEL,
                               cwd=str(source.parent), progress_bar=show_progress)
    render_html(cell.output, cell.html)
    seconds = time.perf_counter() - start
    cell.marker.write_text(json.dumps({"fingerprint": _fingerprint(cell, source), "seconds": seconds,
                                       "finished": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=1, default=str))
    return seconds


def run_study(study: StudyConfig, reports: Path | None = None, notebooks: Path | None = None,
              show_progress: bool = True, force: bool = False, **dirs) -> list[Cell]:
    """Run every cell not already done, in order; write the study manifest and reports/index.html."""
    reports = Path(reports or paths.REPORTS_DIR)
    notebooks = Path(notebooks or paths.NOTEBOOKS_DIR)
    cells = expand(study, reports=reports, show_progress=show_progress, **dirs)
    install_widget_assets(reports)
    bar = tqdm(cells, desc=f"study {study.name}", unit="notebook", disable=not show_progress)
    ran = False
    try:
        for cell in bar:
            bar.set_postfix_str(f"{cell.notebook} {cell.label}"[:80])
            summary = not NOTEBOOK_AXES[cell.notebook]  # the report reads the whole store: redo it after new runs
            if not force and not (summary and ran) and is_done(cell, notebooks / f"{cell.notebook}.ipynb"):
                continue
            run_cell(cell, notebooks, show_progress=show_progress)
            ran = True
    finally:  # the index also links what finished before a failure
        write_manifest(study, cells, reports)
        write_index(reports)
    return cells


# ------------------------------------------------------------------------------------------ HTML
WIDGET_ASSETS = {"embed-amd.js": "node_modules/@jupyter-widgets/html-manager/dist/embed-amd.js",
                 "require.js": "node_modules/requirejs/require.js"}


def install_widget_assets(reports: Path) -> bool:
    """Put the ipywidgets HTML manager and require.js in reports/_static/ so widgets render offline.

    Uses npm (the registry client) once; returns False, and the HTML falls back to the CDN scripts and
    the explorer's static figures, when npm is missing or fails.
    """
    static = Path(reports) / "_static"
    cache = paths.REPORTS_DIR / "_static"  # one npm install per checkout, copied into other report trees
    if not all((cache / name).exists() for name in WIDGET_ASSETS):
        npm = shutil.which("npm")
        if npm is None:
            return False
        cache.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([npm, "install", "--prefix", str(cache), "--no-audit", "--no-fund", "--silent",
                               "@jupyter-widgets/html-manager@1", "requirejs@2"], capture_output=True, text=True)
        if done.returncode != 0:
            return False
        for name, rel in WIDGET_ASSETS.items():
            shutil.copyfile(cache / rel, cache / name)
    if static.resolve() != cache.resolve():
        static.mkdir(parents=True, exist_ok=True)
        for name in WIDGET_ASSETS:
            shutil.copyfile(cache / name, static / name)
    return True


def render_html(ipynb: Path, target: Path) -> Path:
    """nbconvert HTML with tqdm streams coalesced and, when present, local widget scripts."""
    import nbformat
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    config = Config()
    config.CoalesceStreamsPreprocessor.enabled = True  # tqdm writes one stderr line per update
    exporter = HTMLExporter(config=config)
    static = _static_dir(target)
    if static is not None:
        rel = Path(*[".."] * (len(target.relative_to(static.parent).parts) - 1))
        exporter.widget_renderer_url = (rel / "_static" / "embed-amd.js").as_posix()
        exporter.require_js_url = (rel / "_static" / "require.js").as_posix()
    body, _ = exporter.from_notebook_node(nbformat.read(str(ipynb), as_version=4))
    target.write_text(body, encoding="utf-8")
    return target


def _static_dir(target: Path) -> Path | None:
    for parent in Path(target).resolve().parents:
        if all((parent / "_static" / name).exists() for name in WIDGET_ASSETS):
            return parent / "_static"
    return None


def write_manifest(study: StudyConfig, cells: list[Cell], reports: Path) -> Path:
    path = Path(reports) / study.name / "manifest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"notebook": c.notebook, "axes": c.axes, "ipynb": c.output.relative_to(reports).as_posix(),
             "html": c.html.relative_to(reports).as_posix(), "done": c.marker.exists() and c.html.exists()}
            for c in cells]
    path.write_text(json.dumps({"study": study.name, "description": study.description, "cells": rows}, indent=1))
    return path


def write_index(reports: Path) -> Path:
    """reports/index.html: every study found under ``reports``, each cell linked to its HTML and notebook."""
    reports = Path(reports)
    sections = []
    for manifest in sorted(reports.glob("*/manifest.json")):
        data = json.loads(manifest.read_text())
        rows = []
        for row in data["cells"]:
            status = "done" if (reports / row["html"]).exists() else "not run"
            link = (f'<a href="{html.escape(row["html"])}">report</a> · <a href="{html.escape(row["ipynb"])}">ipynb</a>'
                    if status == "done" else "")
            axes = ", ".join(f"{k}={v}" for k, v in row["axes"].items()) or "all runs"
            rows.append(f"<tr><td>{html.escape(row['notebook'])}</td><td>{html.escape(axes)}</td>"
                        f"<td>{status}</td><td>{link}</td></tr>")
        sections.append(f"<h2>{html.escape(data['study'])}</h2><p>{html.escape(data.get('description', ''))}</p>"
                        "<table><tr><th>notebook</th><th>parameters</th><th>status</th><th>links</th></tr>"
                        + "".join(rows) + "</table>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>tts-prune reports</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style></head><body>"
            "<h1>tts-prune: executed study notebooks</h1>" + ("".join(sections) or "<p>No study has run yet.</p>")
            + "</body></html>")
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "index.html").write_text(page, encoding="utf-8")
    return reports / "index.html"


# ------------------------------------------------------------------------------------------ CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study", default=str(paths.ROOT / "studies" / "default.yaml"), help="study YAML file")
    parser.add_argument("--model", action="append", default=None, help="replace the study's models (repeatable)")
    parser.add_argument("--out", default=None,
                        help="put reports/, results/, figures/ and models/ under this folder instead of the project's")
    parser.add_argument("--notebooks", default=None, help="folder of the input notebooks (default: notebooks/)")
    parser.add_argument("--force", action="store_true", help="re-run cells that are already done")
    parser.add_argument("--list", action="store_true", help="print the cells and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import papermill

    study = load_study(args.study, models=args.model)
    out = Path(args.out) if args.out else None
    dirs = {} if out is None else {"reports": out / "reports", "results": out / "results",
                                   "figures": out / "figures", "models_out": out / "models"}
    if args.list:
        for cell in expand(study, **dirs):
            print(f"{cell.notebook:16s} {cell.label:70s} {cell.output}")
        return 0
    start = time.perf_counter()
    try:
        cells = run_study(study, notebooks=args.notebooks, show_progress=not args.no_progress, force=args.force, **dirs)
    except papermill.PapermillExecutionError as error:
        print(f"tts-prune study: a notebook failed, the run stops here:\n{error}", file=sys.stderr)
        return 1
    print(f"study {study.name}: {len(cells)} notebooks in {time.perf_counter() - start:.0f} s; "
          f"index: {Path(dirs.get('reports', paths.REPORTS_DIR)) / 'index.html'}")
    return 0


# ------------------------------------------------------------------------------------------ notebook helpers
def output_dir(given: str, default: Path) -> Path:
    """A notebook's output folder: the runner's (``given``) or, run by hand, a ``lab`` default."""
    return paths.ensure(Path(given) if given else Path(default))


def _toy_texts(tokenizer, nsamples: int, seed: int) -> list[str]:
    # The toy reasoner's vocabulary is the task's characters: calibrate it on rendered *training* problems
    # (question + scratchpad + answer, in its chat template), never on the test split it is evaluated on.
    from .toy import render
    from .toy_task import make_problems

    return [render(tokenizer, p["problem"], p["thinking"], p["answer"])
            for p in make_problems(max(4 * nsamples, 64), seed=seed, split="train")]


CALIBRATION_TEXTS = {"toy-reasoning": _toy_texts}  # sources that need more than calibration_texts' file readers


def calibration_ids(tokenizer, source: str, nsamples: int, seqlen: int, seed: int = 0):
    """Calibration token ids (nsamples, seqlen) for the notebooks: ``toy-reasoning`` or any source that
    ``tts_prune.calibration_batches`` reads (gsm8k, builtin, a text/JSONL path, an HF dataset id)."""
    from .calibration import calibration_batches

    texts = CALIBRATION_TEXTS[source](tokenizer, nsamples, seed) if source in CALIBRATION_TEXTS else source
    return calibration_batches(tokenizer, texts, nsamples=nsamples, seqlen=seqlen, seed=seed)


def heldout_ids(tokenizer, source: str = "", max_tokens: int = 4096):
    """Held-out token ids (n,) for perplexity: ``source`` (a text/JSONL path) or, when empty, the GSM8K
    *test* solutions (calibration draws from GSM8K *train*), else the bundled ``builtin`` text."""
    import torch

    from .calibration import calibration_texts

    if not source:
        test = [d / "gsm8k_test.jsonl" for d in (paths.BENCHMARK_DIR, paths.SHARED_BENCHMARK_DIR)]
        source = next((str(p) for p in test if p.exists()), "builtin")
    ids: list[int] = []
    for text in calibration_texts(source):
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        if len(ids) >= max_tokens:
            break
    if len(ids) < 2:
        raise ValueError(f"held-out source {source!r} gave {len(ids)} tokens; pass a text/JSONL file with more text")
    return torch.tensor(ids[:max_tokens], dtype=torch.long)
