"""A study file: the YAML grid read into a frozen, validated ``StudyConfig`` (``load_study``).

``tts_prune.study.grid`` turns a ``StudyConfig`` into cells and their DAG; this module only reads and checks
what the file declares (its keys, per-model ``overrides``, each notebook's axes).
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .. import paths
from ..models.runtime import resolve_threads


# Which grid axes each notebook varies over (its other parameters are passed unchanged to every cell).
# Order is the order of the walk; a notebook with no axis runs once per study.
NOTEBOOK_AXES: dict[str, tuple[str, ...]] = {
    "01-calibration": ("model",),
    "02-allocation": ("model", "sparsity"),
    "03-pruning": ("model", "method", "allocation", "sparsity"),
    "04-tts-scaling": ("model", "method", "allocation", "sparsity"),  # + every benchmark, inside the cell
    "05-report": (),
}

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
