"""Peak device memory and time of every step a study cell runs, from a model's shapes (``shapes.ModelShape``).

Each formula follows the code it models; ``b`` is the model dtype's bytes, ``h`` hidden, ``I`` intermediate,
``V`` vocabulary, ``S`` a sequence length, ``W`` the weights' bytes:

* **calibration walk** (``pruning/calibration.py``): all ``nsamples x S`` block inputs and the block's outputs
  stay on the device (2 x nsamples x S x h x b), one chunk of ``batch`` sequences runs through the block
  (batch x S x (3I + 6h) x b: gate/up/product and q/k/v/o/residual), and the statistics hook upcasts that
  chunk's input to float32 (2 x batch x S x max(in) x 4, value and square).
* **Wanda / OWL**: a per-linear float32 score and mask (5 x out x in bytes, largest linear) after the walk.
* **SparseGPT**: every linear of a block collects its float32 Hessian (in^2 x 4) at once; its kernel clones the
  weight in float32 and factorises a copy of H (out x in x 4 + 2 x in^2 x 4 for the largest).
* **LayerIF** (``allocation.layerif_scores``): a full backward of one S-token window with gradients on every
  prunable weight (prunable x b), activations kept for backward (about S x (16h + 6I) x b per block, a
  Korthikanti et al. style count, arXiv 2205.05198, for a SwiGLU block with fused attention) and float32 logits
  with their gradient (S x V x (b + 8)).
* **AlphaPruning**: ``svdvals`` of the largest matrix in float32 (3 x out x in x 4 with LAPACK workspace).
* **generation, vLLM**: vLLM takes ``gpu_memory_utilization`` of the device; weights and its activation profile
  come first and the rest is KV cache (``hardware.EngineModel``).
* **generation, transformers** (``tts/generation.py``): the KV cache of ``batch_size`` thinking rows plus one
  answer row per budget at the longest row's columns (the bound when answers overlap), float32 logits of those
  rows, and the prompt's prefill activations.
* **divergence** (``pruning/divergence.py``, streamed as issue 19 asks): dense and pruned weights both on the
  device, ``batch`` traces of T tokens through a block (batch x T x (3I + 6h) x b), and logits of ``slice``
  positions kept in bf16, float32 and log-softmax (slice x V x (b + 8)) per trace; ``slice = None`` is the
  non-streaming code (all T positions of ``batch`` traces at once).
"""
from __future__ import annotations

from dataclasses import dataclass

from .hardware import GiB, Accelerator, EngineModel
from .shapes import DTYPE_BYTES, ModelShape

CUDA_CONTEXT_GIB = 0.5  # the CUDA context and allocator slack no step can use


@dataclass(frozen=True)
class Step:
    """One step of one cell: its peak device bytes, seconds, and what to change when it does not fit."""

    name: str
    peak_bytes: float
    seconds: float
    fix: str
    limit_bytes: float | None = None  # what the step may use (default: the device's memory less the context)
    detail: str = ""

    def fits(self, gpu: Accelerator) -> bool:
        limit = self.limit_bytes if self.limit_bytes is not None else gpu.memory_bytes - CUDA_CONTEXT_GIB * GiB
        return self.peak_bytes <= limit


def _largest(shape: ModelShape) -> tuple[int, int]:
    _, out, inp = max(shape.linears, key=lambda x: x[1] * x[2])
    return out, inp


def calibration_walk(shape: ModelShape, dtype: str, nsamples: int, seqlen: int, batch: int = 1) -> float:
    """Bytes of the layer-by-layer walk beyond the weights (inputs, outputs, one chunk's working set, hooks)."""
    b = DTYPE_BYTES[dtype]
    kept = 2 * nsamples * seqlen * shape.hidden * b
    working = batch * seqlen * (3 * shape.intermediate + 6 * shape.hidden) * b
    hooks = 2 * batch * seqlen * max(i for _, _, i in shape.linears) * 4
    return kept + working + hooks


def pruning_step(shape: ModelShape, gpu: Accelerator, engine: EngineModel, method: str, dtype: str,
                 nsamples: int, seqlen: int, batch: int = 1, passes: int = 2) -> Step:
    """Calibration walk + the method's statistics and kernel (``method`` in magnitude, wanda, sparsegpt,
    shortgpt, owl for OWL's outlier pass, calibration for 01's activation profile)."""
    weights = shape.weight_bytes(dtype)
    out, inp = _largest(shape)
    if method == "magnitude":  # no data: one float32 score and mask at a time
        return Step("magnitude", weights + 5 * out * inp, 0.0, "magnitude needs only the weights and one score "
                    "matrix: use a device that holds the model")
    walk = calibration_walk(shape, dtype, nsamples, seqlen, batch)
    kernel, extra_seconds = 5 * out * inp, 0.0
    if method == "sparsegpt":
        hessians = sum(i * i * 4 for _, _, i in shape.linears)
        worst = max(o * i * 4 + 2 * i * i * 4 for _, o, i in shape.linears)
        kernel = hessians + worst
        # OBS updates (~out x in^2) and the Cholesky inverse (~in^3) per linear, in float32
        flops = shape.layers * sum(o * i * i + i ** 3 for _, o, i in shape.linears)
        extra_seconds = flops / (gpu.fp32_tflops * 1e12 * engine.mfu)
    elif method == "shortgpt":
        kernel, passes = 2 * batch * seqlen * shape.hidden * 4, 1  # cosine in float32; outputs reused
    seconds = passes * engine.forward_seconds(shape, gpu, nsamples * seqlen, seqlen / 2) + extra_seconds
    kept = 2 * nsamples * seqlen * shape.hidden * DTYPE_BYTES[dtype]
    fix = (f"the walk keeps 2 x nsamples x seqlen hidden states ({kept / GiB:.1f} GiB): "
           "lower nsamples or seqlen, or spread the model over more devices (device_map='auto')")
    if method == "sparsegpt":
        fix += "; SparseGPT also holds one float32 in x in Hessian per linear of a block"
    return Step(method, weights + walk + kernel, seconds, fix)


def layerif_step(shape: ModelShape, gpu: Accelerator, engine: EngineModel, dtype: str, samples: int,
                 seqlen: int) -> Step:
    b = DTYPE_BYTES[dtype]
    activations = shape.layers * seqlen * (16 * shape.hidden + 6 * shape.intermediate) * b
    peak = shape.weight_bytes(dtype) + shape.prunable_params * b + activations + seqlen * shape.vocab * (b + 8)
    seconds = 3 * samples * engine.forward_seconds(shape, gpu, seqlen, seqlen / 2)  # forward + backward
    return Step("layerif", peak, seconds, "LayerIF back-propagates one calibration window with gradients on every "
                "prunable weight: lower seqlen, or run 02/03 on a larger device")


def alphapruning_step(shape: ModelShape, gpu: Accelerator, dtype: str) -> Step:
    out, inp = _largest(shape)
    flops = shape.layers * sum(4 * o * i * min(o, i) for _, o, i in shape.linears)  # Golub-Kahan bidiagonalisation
    return Step("alphapruning", shape.weight_bytes(dtype) + 12 * out * inp, flops / (gpu.fp32_tflops * 1e12 * 0.1),
                "AlphaPruning needs one float32 SVD at a time: use a device that holds the model")


def perplexity_step(shape: ModelShape, gpu: Accelerator, engine: EngineModel, dtype: str, tokens: int,
                    window: int) -> Step:
    b = DTYPE_BYTES[dtype]
    peak = shape.weight_bytes(dtype) + window * (shape.vocab * (b + 8) + (3 * shape.intermediate + 6 * shape.hidden) * b)
    return Step("perplexity", peak, 2 * engine.forward_seconds(shape, gpu, tokens, window / 2),
                "lower ppl_seqlen (the window's float32 logits)")


def vllm_steps(shape: ModelShape, gpu: Accelerator, engine: EngineModel, dtype: str, longest: int,
               max_model_len: int, devices: int = 1) -> tuple[list[Step], float]:
    """vLLM's three checks and its pool: it takes ``gpu_memory_utilization`` of the device (the step's peak);
    weights and its activation profile must fit under that share; the rest, the KV cache pool, must hold one
    ``max_model_len`` sequence or vLLM refuses to start."""
    budget = engine.gpu_memory_utilization * gpu.memory_bytes
    load = shape.weight_bytes(dtype) / devices + engine.activation_bytes(shape, dtype)
    need_gib = (shape.weight_bytes(dtype) + engine.activation_bytes(shape, dtype) * devices) / GiB
    fits_on = -(-need_gib // (engine.gpu_memory_utilization * gpu.memory_gib - 1))
    taken = Step("generation (vLLM)", budget, 0.0, "lower gpu_memory_utilization (vllm_options)")
    weights = Step("vLLM weights + activations", load, 0.0,
                   f"weights and vLLM's activations need {need_gib:.1f} GiB: set params.tensor_parallel_size to "
                   f"{int(max(fits_on, devices + 1))} or use a device with more memory", limit_bytes=budget)
    pool = engine.kv_pool_bytes(shape, gpu, dtype, devices)
    kv = shape.kv_bytes_per_token(dtype)
    cache = Step("vLLM KV >= max_model_len", max_model_len * kv, 0.0,
                 f"vLLM refuses to start when its KV cache ({max(pool, 0) / GiB:.1f} GiB) cannot hold one "
                 f"max_model_len = {max_model_len} sequence ({max_model_len * kv / GiB:.1f} GiB): set "
                 f"vllm_options.max_model_len to the study's longest sequence ({longest}) or raise "
                 "gpu_memory_utilization", limit_bytes=max(pool, 0))
    return [taken, weights, cache], pool


def transformers_generation_step(shape: ModelShape, dtype: str, batch: int, budgets: int, columns: int,
                                 prompt: int) -> Step:
    b = DTYPE_BYTES[dtype]
    rows = batch * (1 + budgets)
    peak = (shape.weight_bytes(dtype) + rows * columns * shape.kv_bytes_per_token(dtype) + rows * shape.vocab * 8
            + batch * prompt * (3 * shape.intermediate + 6 * shape.hidden) * b)
    return Step("generation (transformers)", peak, 0.0, f"lower batch_size (KV cache of up to {rows} rows x "
                f"{columns} columns), or use backend vllm")


def divergence_step(shape: ModelShape, gpu: Accelerator, engine: EngineModel, dtype: str, traces: int,
                    length: int, batch: int = 1, slice_: int | None = 1024) -> Step:
    b = DTYPE_BYTES[dtype]
    positions = length if slice_ is None else min(slice_, length)
    peak = (2 * shape.weight_bytes(dtype) + batch * length * (3 * shape.intermediate + 6 * shape.hidden) * b
            + batch * positions * shape.vocab * (b + 8))
    seconds = 2 * engine.forward_seconds(shape, gpu, traces * length, length / 2)
    if 2 * shape.weight_bytes(dtype) > gpu.memory_bytes - CUDA_CONTEXT_GIB * GiB:
        fix = (f"dense and pruned weights together need {2 * shape.weight_bytes(dtype) / GiB:.1f} GiB: use a device "
               "that holds both models, or set divergence_traces to 0")
    else:
        fix = (f"this setting holds {batch * positions * shape.vocab * (b + 8) / GiB:.1f} GiB of logits at once; stream "
               "the divergence: one trace at a time with logits in slices of positions (trace_divergence's "
               "slice_size)")
    return Step("divergence", peak, seconds, fix)


def divergence_settings(batch_size: int, slice_size: int | None = None) -> tuple[int, int | None]:
    """(traces per forward pass, positions per logits slice or None for whole traces) of a
    ``trace_divergence(..., batch_size=batch_size[, slice_size=slice_size])`` call, as the installed code runs it:
    with a ``slice_size`` argument it streams one trace and ``slice_size`` positions at a time (None: the
    function's default); without one (the batched code) it holds ``batch_size`` whole traces."""
    import inspect

    from ..pruning.divergence import trace_divergence

    accepted = inspect.signature(trace_divergence).parameters
    if "slice_size" in accepted:
        return 1, int(slice_size or accepted["slice_size"].default)
    return batch_size, None
