"""``tts-prune plan``: what a study will cost on a given GPU, and whether every step fits, before the spend.

``plan_study(study, gpu="h100-80gb")`` walks the study's cells (``grid.expand``) and, for every step a cell runs,
computes its peak device memory (``steps``) and time (``hardware``: a memory-bandwidth roofline for decoding,
compute-bound forward passes for the rest), and for the 04 cells the generated tokens (``workload``). Shapes
come from each model's ``config.json`` (``shapes``), never from its weights. Beside the kit's cost it prices
the same grid as the authors' scripts run it, and the worst case of the answer allowance. A step that will not
fit is a *refusal*: the plan names the cell, the step and the fix, and the command exits non-zero.

A 04 cell is one model variant: one engine serves all its benchmarks (one start, spread over them). A ShortGPT
variant serves the smaller model its 03 cell saves (``ModelShape.without_blocks``: fewer weights and KV bytes per
token). Answers get the allowance the generation code gives them (``workload.allowance``), and the divergence
step is priced as the installed ``trace_divergence`` runs it (``steps.divergence_settings``).
"""
from __future__ import annotations

import ast
import dataclasses
import functools
from collections import defaultdict
from dataclasses import dataclass, field

import pandas as pd

from .. import paths
from ..pruning.methods import structured
from ..pruning.recipe import DENSE, RECIPE_AXES
from .grid import (CONSUMER, PRODUCER, CALIBRATION_AXES, StudyConfig, expand,
                   load_study)
from .hardware import GiB, Accelerator, EngineModel, accelerator, engine_run
from .shapes import ModelShape, model_shape
from .steps import (Step, alphapruning_step, divergence_settings, divergence_step, layerif_step, perplexity_step,
                    pruning_step, transformers_generation_step, vllm_steps)
from .workload import FORCED_END, Generation, allowance, authors_generation, kit_generation, problems

LOAD_GBS, SAVE_GBS = 2.0, 1.0  # reading / writing a checkpoint, GB/s (local NVMe; an assumption)
_ENGINE_KEYS = ("gpu_memory_utilization", "max_num_seqs", "max_num_batched_tokens")  # vllm_options the plan follows
GENERATION = "generation of "  # the step that generates one benchmark's records (engine start share included)
LAYERIF = ("layerif", "layerif-block")  # both back-propagate calibration windows (one cost model, steps.layerif_step)


@dataclass(frozen=True)
class PlanOptions:
    """How to plan: the device, the engine model, and the assumptions a user may change."""

    gpu: str = "h100-80gb"
    gpu_memory: float | None = None       # GiB, replaces the device's memory
    engine: EngineModel = field(default_factory=EngineModel)
    answer_mean: int = 200                # assumed mean answer tokens
    divergence_batch: int | None = None   # traces per forward pass in 04's divergence step (None: as the code)
    divergence_slice: int | None = None   # positions per logits slice (None: as the code; 0: whole traces)
    max_gen_tokens: int | None = None     # thinking + answer allowance (s1's max_gen_toks); None: the study's

    def __post_init__(self):
        if self.answer_mean < 1 or (self.divergence_batch is not None and self.divergence_batch < 1) \
                or (self.divergence_slice is not None and self.divergence_slice < 0) \
                or (self.max_gen_tokens is not None and self.max_gen_tokens < 1):
            raise ValueError(f"PlanOptions: answer_mean={self.answer_mean}, divergence_batch={self.divergence_batch}, "
                             f"divergence_slice={self.divergence_slice}, max_gen_tokens={self.max_gen_tokens}; "
                             "allowed: positive integers (batch and slice None: as the code runs; slice 0: whole "
                             "traces). Fix the option.")


@dataclass
class Plan:
    """The plan: ``steps`` (one row per step of each cell), ``cells`` (one row per cell), ``models`` (per model:
    weights, KV cache, concurrency), ``totals`` and ``refusals`` (steps that will not fit)."""

    study: str
    gpu: Accelerator
    options: PlanOptions
    steps: pd.DataFrame
    cells: pd.DataFrame
    models: pd.DataFrame
    totals: dict
    refusals: list[str]

    @property
    def ok(self) -> bool:
        return not self.refusals

    def text(self, per_step: bool = False) -> str:
        from .plan_report import render

        return render(self, per_step)


def _notebook_default(notebook: str, name: str):
    return _defaults(notebook).get(name)


@functools.lru_cache(maxsize=8)
def _defaults(notebook: str) -> dict:
    from .execute import notebook_parameters

    found = notebook_parameters(paths.NOTEBOOKS_DIR / f"{notebook}.ipynb")
    return {k: ast.literal_eval(v["default"]) for k, v in found.items()}


def _param(cell, name, default=None):
    if name in cell.parameters:
        return cell.parameters[name]
    value = _notebook_default(cell.notebook, name)
    return default if value is None else value


def _dtype(cell, gpu: Accelerator) -> str:
    dtype = str(_param(cell, "dtype", "auto"))
    return dtype if dtype != "auto" else ("float32" if gpu.name == "cpu" else "bfloat16")


def _benchmarks(cell, cfg: StudyConfig) -> list[str]:  # a 04 cell per benchmark, or per variant with all inside
    from .grid import _benchmarks as study_benchmarks

    if "benchmark" in cell.axes:
        return [cell.axes["benchmark"]]
    return list(_param(cell, "benchmarks", study_benchmarks(cfg)))


def _variant(cell) -> tuple:  # the recipe of the weights a 04 cell serves (ShortGPT's block count included)
    return tuple(cell.axes.get(k) for k in RECIPE_AXES + tuple(CALIBRATION_AXES) + ("shortgpt_layers",))


def _served(cell, shape: ModelShape) -> ModelShape:
    """The model a cell's pruned weights make: ShortGPT removes ``shortgpt_layers`` blocks, or ``round(s x L)``
    at sparsity ``s`` (``pruning/shortgpt.py``); unstructured pruning keeps every shape."""
    if not structured(cell.axes.get("method")):
        return shape
    count = cell.axes.get("shortgpt_layers") or round(float(cell.axes.get("sparsity") or 0) * shape.layers)
    return shape.without_blocks(int(count))


def _divergence_settings(cell, options: PlanOptions) -> tuple[int, int | None]:
    """04's divergence step as the code runs it (``divergence_settings`` with the cell's ``batch_size`` and a
    ``divergence_slice`` parameter where the notebook has one), unless ``options`` set them."""
    code = divergence_settings(int(_param(cell, "batch_size", 16)), _param(cell, "divergence_slice"))
    batch = options.divergence_batch or code[0]
    slice_ = code[1] if options.divergence_slice is None else (options.divergence_slice or None)
    return batch, slice_


def _max_gen(cfg: StudyConfig, options: PlanOptions) -> int | None:
    return options.max_gen_tokens or getattr(cfg, "max_gen_tokens", None)  # the study key of issue 19's design


def _longest(cfg: StudyConfig, options: PlanOptions, prompt_max: int) -> int:
    """The longest sequence the study may ask for (no context limit): prompt, thinking, forced end, allowance."""
    return max(prompt_max + b + FORCED_END + allowance(b, cfg.answer_tokens, _max_gen(cfg, options), prompt_max)
               for b in cfg.budgets)


def plan_study(study: StudyConfig | str, gpu: str | None = None, options: PlanOptions | None = None) -> Plan:
    """Plan ``study`` (a StudyConfig or a YAML path) on ``gpu`` (default: ``options.gpu``, an H100-80GB); see the
    module docstring."""
    study = load_study(study) if not isinstance(study, StudyConfig) else study
    options = options or PlanOptions()
    if gpu is not None:
        options = dataclasses.replace(options, gpu=gpu)
    device = accelerator(options.gpu, options.gpu_memory)
    engine = options.engine
    cells = expand(study, show_progress=False)
    rows, models, refusals = [], {}, []
    variant_cells = defaultdict(list)
    for cell in cells:
        if cell.notebook == CONSUMER:
            variant_cells[(cell.axes["model"], _variant(cell))].append(cell)

    def add(cell, step: Step, tokens=0.0, authors_tokens=0.0, authors_seconds=0.0, worst_tokens=0.0,
            worst_seconds=0.0, rate=0.0, batch=0):
        fits = step.fits(device)
        limit = step.limit_bytes if step.limit_bytes is not None else device.memory_bytes
        rows.append({"cell": cell.key, "notebook": cell.notebook, "model": cell.axes.get("model", ""),
                     "label": ", ".join(f"{k}={v}" for k, v in cell.axes.items() if k != "model") or "-",
                     "step": step.name, "peak_gib": step.peak_bytes / GiB, "limit_gib": limit / GiB, "fits": fits,
                     "hours": step.seconds / 3600, "tokens": tokens, "tokens_per_s": rate, "concurrency": batch,
                     "authors_tokens": authors_tokens, "authors_hours": authors_seconds / 3600,
                     "worst_tokens": worst_tokens, "worst_hours": worst_seconds / 3600})
        if not fits:
            refusals.append(f"cell {cell.notebook} [{cell.label}], step {step.name}: needs {step.peak_bytes / GiB:.1f} "
                            f"GiB of {device.name}'s {limit / GiB:.1f} GiB. "
                            f"Fix: {step.fix}")

    for cell in cells:
        if cell.notebook == "05-report":
            add(cell, Step("report", 0.0, 0.0, ""))
            continue
        model = cell.axes["model"]
        cfg = study.for_model(model)
        shape = model_shape(model)
        dtype = _dtype(cell, device)
        nsamples, seqlen = int(_param(cell, "nsamples", cfg.nsamples)), int(_param(cell, "seqlen", cfg.seqlen))
        load = Step("load weights", shape.weight_bytes(dtype), shape.weight_bytes(dtype) / (LOAD_GBS * 1e9),
                    "use a device that holds the model's weights")
        if cell.notebook in ("01-calibration", "02-allocation"):
            add(cell, load)
            add(cell, pruning_step(shape, device, engine, "calibration", dtype, nsamples, seqlen))
            if cell.notebook == "02-allocation":
                allocations = list(_param(cell, "allocations", []))
                if set(LAYERIF) & set(allocations):
                    add(cell, layerif_step(shape, device, engine, dtype, int(_param(cell, "layerif_samples", 16)), seqlen))
                if "alphapruning" in allocations:
                    add(cell, alphapruning_step(shape, device, dtype))
                add(cell, pruning_step(shape, device, engine, "shortgpt", dtype, nsamples, seqlen))
        elif cell.notebook == PRODUCER:
            method, allocation = cell.axes["method"], cell.axes["allocation"]
            add(cell, load)
            if allocation == "owl":
                add(cell, pruning_step(shape, device, engine, "owl", dtype, nsamples, seqlen))
            elif allocation in LAYERIF:
                add(cell, layerif_step(shape, device, engine, dtype, int(_param(cell, "layerif_samples", 16)), seqlen))
            elif allocation == "alphapruning":
                add(cell, alphapruning_step(shape, device, dtype))
            add(cell, pruning_step(shape, device, engine, method, dtype, nsamples, seqlen))
            pruned = _served(cell, shape)  # removing blocks is free; perplexity and save see the smaller model
            add(cell, perplexity_step(pruned, device, engine, dtype, int(_param(cell, "ppl_tokens", 4096)),
                                      int(_param(cell, "ppl_seqlen", 512))))
            add(cell, Step("save", 0.0, pruned.weight_bytes(dtype) / (SAVE_GBS * 1e9), ""))
        elif cell.notebook == CONSUMER:
            _plan_consumer(cell, cfg, shape, dtype, device, options, variant_cells, models, add)
    steps = pd.DataFrame(rows)
    per_cell = steps.groupby("cell", sort=False).agg(
        notebook=("notebook", "first"), model=("model", "first"), label=("label", "first"),
        peak_gib=("peak_gib", "max"), fits=("fits", "all"), hours=("hours", "sum"), tokens=("tokens", "sum"),
        authors_tokens=("authors_tokens", "sum"), authors_hours=("authors_hours", "sum"),
        worst_tokens=("worst_tokens", "sum"), worst_hours=("worst_hours", "sum")).reset_index()
    peak_step = steps.loc[steps.groupby("cell", sort=False)["peak_gib"].idxmax(), ["cell", "step"]]
    per_cell = per_cell.merge(peak_step.rename(columns={"step": "peak_step"}), on="cell")
    consumer = per_cell[per_cell["notebook"] == CONSUMER]
    other = per_cell[per_cell["notebook"] != CONSUMER]
    generating = steps[steps["step"].str.startswith(GENERATION)]
    totals = {"cells": len(per_cell), "hours": float(per_cell["hours"].sum()),
              "tts_hours": float(consumer["hours"].sum()), "other_hours": float(other["hours"].sum()),
              "generation_hours": float(generating["hours"].sum()),
              "tokens": float(per_cell["tokens"].sum()), "engine_starts": len(variant_cells),
              "authors_hours": float(consumer["authors_hours"].sum() + other["hours"].sum()),
              "authors_generation_hours": float(consumer["authors_hours"].sum()),
              "authors_tokens": float(per_cell["authors_tokens"].sum()),
              "authors_engine_starts": sum(m["authors_starts"] for m in models.values()),
              "worst_tokens": float(per_cell["worst_tokens"].sum()),
              "worst_hours": float(consumer["worst_hours"].sum() + other["hours"].sum())}
    totals["saving"] = totals["authors_generation_hours"] / max(totals["generation_hours"], 1e-12)
    return Plan(study.name, device, options, steps, per_cell, pd.DataFrame(list(models.values())), totals, refusals)


def _plan_consumer(cell, cfg, shape, dtype, device, options, variant_cells, models, add) -> None:
    """04: generation (kit, authors, worst case) and, for a pruned variant, the divergence step."""
    vllm_options = dict(_param(cell, "vllm_options", {}) or {})
    engine = dataclasses.replace(options.engine, **{k: vllm_options[k] for k in _ENGINE_KEYS if k in vllm_options})
    dense_shape, shape = shape, _served(cell, shape)  # a ShortGPT variant serves fewer blocks
    sequences = len(cfg.seeds) * cfg.samples
    limit = cfg.limit or None
    benches = {b: problems(b, limit) for b in _benchmarks(cell, cfg)}
    prompt_max = max(p.prompt_max for p in benches.values())
    longest = _longest(cfg, options, prompt_max)
    backend = str(_param(cell, "backend", cfg.backend))
    devices = int(_param(cell, "tensor_parallel_size", 1) or 1)
    max_model_len = int(vllm_options.get("max_model_len") or shape.max_positions or longest)
    answers = dict(answer_tokens=cfg.answer_tokens, max_gen_tokens=_max_gen(cfg, options), context=max_model_len)
    if backend == "vllm" or (backend == "auto" and device.name != "cpu"):
        checks, pool = vllm_steps(shape, device, engine, dtype, longest, max_model_len, devices)
        for step in checks:
            add(cell, step)
    else:  # the transformers backend starts no engine: a "start" is loading the weights
        engine = dataclasses.replace(engine, engine_start_s=shape.weight_bytes(dtype) / (LOAD_GBS * 1e9))
        batch = int(_param(cell, "batch_size", 16))
        add(cell, transformers_generation_step(shape, dtype, batch, len(cfg.budgets), longest, prompt_max))
        pool = device.memory_bytes - shape.weight_bytes(dtype)
    # The variant's engine serves every benchmark of the variant: its rate is set by all of them together.
    mates = variant_cells[(cell.axes["model"], _variant(cell))]
    every = {b: problems(b, limit) for c in mates for b in _benchmarks(c, cfg)}
    shares = sum(len(_benchmarks(c, cfg)) for c in mates)  # (cell, benchmark) steps the start is spread over
    variant = Generation.combine([kit_generation(p, cfg.budgets, sequences, options.answer_mean, **answers)
                                  for p in every.values()])
    _, rate, batch = engine_run(shape, device, engine, dtype, variant, pool, devices)
    key = shape.name  # the model, or "<model> -N blocks" for a ShortGPT variant
    info = models.setdefault(key, {"model": key, "params_b": shape.params / 1e9,
                                   "weights_gib": shape.weight_bytes(dtype) / GiB,
                                   "kv_bytes_per_token": shape.kv_bytes_per_token(dtype), "kv_pool_gib": pool / GiB,
                                   "longest": longest, "max_model_len": max_model_len,
                                   "at_longest": int(pool // (min(longest, max_model_len)  # vLLM ends it there
                                                              * shape.kv_bytes_per_token(dtype))),
                                   "concurrency": batch, "tokens_per_s": rate, "authors_starts": 0,
                                   "mean_context": variant.context})
    for name, p in benches.items():
        gen = kit_generation(p, cfg.budgets, sequences, options.answer_mean, **answers)
        seconds = gen.generated / rate + engine.forward_seconds(shape, device, gen.prefill, gen.context)
        seconds += engine.engine_start_s / shares  # one start per variant, spread over its benchmarks
        authors = [authors_generation(p, b, cfg.samples, options.answer_mean, **answers)
                   for b in cfg.budgets for _ in cfg.seeds]  # one harness run per (budget, seed)
        authors_seconds = sum(engine_run(shape, device, engine, dtype, g, pool, devices)[0] for g in authors)
        info["authors_starts"] += len(authors)
        worst = kit_generation(p, cfg.budgets, sequences, None, **answers)
        worst_seconds = engine_run(shape, device, engine, dtype, worst, pool, devices)[0]
        add(cell, Step(f"{GENERATION}{name}", 0.0, seconds * devices, ""), tokens=gen.generated,
            authors_tokens=sum(g.generated for g in authors), authors_seconds=authors_seconds * devices,
            worst_tokens=worst.generated, worst_seconds=worst_seconds * devices, rate=rate, batch=batch)
        traces = int(_param(cell, "divergence_traces", 64))
        if cell.axes["method"] != DENSE and traces:
            # both models at the dense shape: an upper bound for a ShortGPT variant, whose pruned copy is smaller
            add(cell, divergence_step(dense_shape, device, engine, dtype, min(traces, p.count * sequences),
                                      p.prompt_max + max(cfg.budgets), *_divergence_settings(cell, options)))


# ------------------------------------------------------------------------------------------- CLI
