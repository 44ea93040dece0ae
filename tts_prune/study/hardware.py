"""Accelerators and the throughput model behind ``tts-prune plan``.

**Decode** (memory-bandwidth roofline, Williams et al., "Roofline", CACM 2009; for LLM decoding e.g. Pope et al.,
"Efficiently Scaling Transformer Inference", arXiv 2211.05102): each decode step of a batch of ``B`` sequences
reads every weight once and each sequence's KV cache once, and does ``B`` tokens' FLOPs, so

    step_s = max((weight_bytes + B x context x kv_bytes_per_token) / HBM_bandwidth,
                 B x flops_per_token(context) / peak_bf16_flops) / efficiency
    tokens/s = B / step_s

**Efficiency**, the share of that bound a real engine reaches (Databricks' "model bandwidth utilisation", MBU,
in "LLM Inference Performance Engineering: Best Practices", 2023), is calibrated on one published measurement
(LambdaLabsML/vllm-benchmark, ``benchmark_v0.md``): Mistral-7B-Instruct-v0.3 in bf16 on one H100-80GB-SXM,
vLLM 0.5.4, 320 ShareGPT prompts: 3,281 output tok/s at a median time per output token of 27.23 ms, i.e.
~89 sequences per step. The roofline of that step at an assumed mean context of 500 tokens is 6.1 ms, so
vLLM 0.5.4 reached 0.22 of it; the same report measured that vLLM 0.6.0 "more than doubles output throughput"
(CPU overhead removed), so the default is twice that, 0.45 (:func:`calibrated_efficiency` recomputes it).
``--efficiency`` or a measured ``--throughput`` replaces it.

**Prefill and teacher-forced passes** (calibration, divergence, perplexity) are compute-bound:
tokens x flops_per_token / (peak x ``mfu``), with ``mfu`` = 0.4 (an assumption: large-matmul forward passes in
PyTorch reach 40-60% of peak bf16 on H100-class parts; not measured by this kit).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .shapes import ModelShape
    from .workload import Generation

GiB = 1024 ** 3


@dataclass(frozen=True)
class Accelerator:
    """One device: usable memory (what ``torch.cuda.mem_get_info`` reports, not the marketing number), peak HBM
    bandwidth and dense (no 2:4 sparsity) bf16 / fp32 FLOP/s from the vendor's datasheet."""

    name: str
    memory_gib: float
    bandwidth_gbs: float   # GB/s (1e9 bytes)
    bf16_tflops: float
    fp32_tflops: float
    source: str

    @property
    def memory_bytes(self) -> float:
        return self.memory_gib * GiB


# Datasheets: NVIDIA H100 (SXM5), H200 (SXM), A100 80GB (SXM4), L40S product briefs. Usable memory: 80 GB parts
# expose ~79.2 GiB to CUDA, H200 ~139.8 GiB (this project's lent H200 reported "about 139 GiB"), L40S ~44.4 GiB.
ACCELERATORS: dict[str, Accelerator] = {
    "h100-80gb": Accelerator("h100-80gb", 79.2, 3350, 989, 67, "NVIDIA H100 SXM5 datasheet: 3.35 TB/s, 989 TFLOPS bf16"),
    "h200-141gb": Accelerator("h200-141gb", 139.8, 4800, 989, 67, "NVIDIA H200 SXM datasheet: 4.8 TB/s, 989 TFLOPS bf16"),
    "a100-80gb": Accelerator("a100-80gb", 79.2, 2039, 312, 19.5, "NVIDIA A100 80GB SXM4 datasheet: 2.04 TB/s, 312 TFLOPS bf16"),
    "l40s-48gb": Accelerator("l40s-48gb", 44.4, 864, 362, 91.6, "NVIDIA L40S datasheet: 864 GB/s, 362 TFLOPS bf16"),
    # This machine's CPU as a device, to check the plan against measured CPU runs (BENCHMARKS.md): its RAM,
    # ~20 GB/s of memory bandwidth (an assumption) and the 74 GFLOP/s two cores reached in torch's fp32 matmul
    # (BENCHMARKS.md, fraction of the compute bound); pass the measured --throughput for its decode rate.
    "cpu": Accelerator("cpu", 0.0, 20, 0.074, 0.074, "this machine's RAM; 74 GFLOP/s measured on 2 cores"),
}


def accelerator(name: str, memory_gib: float | None = None) -> Accelerator:
    """The named device, with its memory replaced by ``memory_gib`` when given (``--gpu-memory``)."""
    if name not in ACCELERATORS:
        raise ValueError(f"unknown --gpu {name!r}; allowed: {sorted(ACCELERATORS)}. For another device pass the "
                         "closest one and its memory with --gpu-memory GiB (and a measured --throughput)")
    spec = ACCELERATORS[name]
    if memory_gib is None and name == "cpu":
        memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GiB
    if memory_gib is not None:
        if memory_gib <= 0:
            raise ValueError(f"--gpu-memory {memory_gib} must be a positive number of GiB, e.g. 80")
        spec = Accelerator(spec.name, float(memory_gib), spec.bandwidth_gbs, spec.bf16_tflops, spec.fp32_tflops,
                           spec.source + f"; memory set to {memory_gib:g} GiB")
    return spec


# ------------------------------------------------------------------------------ the calibration
LAMBDA_H100 = {"params": 7.248e9, "kv_bytes_per_token": 32 * 2 * 8 * 128 * 2, "tokens_per_s": 3281.19,
               "tpot_s": 27.23e-3, "context": 500, "bandwidth_gbs": 3350}  # Mistral-7B-v0.3, vLLM 0.5.4
VLLM_060_SPEEDUP = 2.0  # "more than doubles output throughput" (same report, vLLM 0.6.0 vs 0.5.4)


def calibrated_efficiency() -> float:
    """Roofline share vLLM reached in the cited H100 measurement, times vLLM 0.6's measured speed-up."""
    m = LAMBDA_H100
    batch = m["tokens_per_s"] * m["tpot_s"]  # sequences per step (Little's law)
    roofline = (2 * m["params"] + batch * m["context"] * m["kv_bytes_per_token"]) / (m["bandwidth_gbs"] * 1e9)
    return round(VLLM_060_SPEEDUP * roofline / m["tpot_s"], 2)


@dataclass(frozen=True)
class EngineModel:
    """How generation is served and how fast: vLLM's settings (its defaults) and the roofline's efficiency.

    ``throughput``, when given, replaces the roofline: decode tokens/s per device at any batch (a measured rate).
    ``reserve_gib`` is what vLLM keeps outside weights and KV cache besides the activation profile (CUDA context,
    CUDA graphs, allocator slack); 1.5 GiB is this kit's assumption.
    """

    efficiency: float = calibrated_efficiency()
    mfu: float = 0.4
    gpu_memory_utilization: float = 0.9
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    engine_start_s: float = 120.0
    reserve_gib: float = 1.5
    throughput: float | None = None

    def __post_init__(self):
        checks = {"efficiency": 0 < self.efficiency <= 1, "mfu": 0 < self.mfu <= 1,
                  "gpu_memory_utilization": 0 < self.gpu_memory_utilization <= 1,
                  "max_num_seqs": self.max_num_seqs >= 1, "engine_start_s": self.engine_start_s >= 0,
                  "throughput": self.throughput is None or self.throughput > 0}
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"EngineModel: {name}={getattr(self, name)!r} is out of range; efficiency, mfu and "
                                 "gpu_memory_utilization in (0, 1], max_num_seqs >= 1, engine_start_s >= 0, "
                                 "throughput > 0 tokens/s (or unset). Fix the option.")

    def describe(self, gpu: Accelerator) -> str:
        if self.throughput:
            return f"decode at a given {self.throughput:,.0f} tokens/s per device (--throughput)"
        return (f"decode: memory-bandwidth roofline on {gpu.bandwidth_gbs:,.0f} GB/s x efficiency {self.efficiency} "
                f"(calibrated: LambdaLabs vLLM benchmark, Mistral-7B on H100, x2 for vLLM >= 0.6); prefill and "
                f"teacher-forced passes: {gpu.bf16_tflops:g} TFLOPS bf16 x mfu {self.mfu}")

    def decode_rate(self, shape, gpu: Accelerator, dtype: str, batch: int, context: float) -> float:
        """Generated tokens/s of ``batch`` sequences decoding together at mean ``context`` positions."""
        if self.throughput:
            return self.throughput
        memory = (shape.weight_bytes(dtype) + batch * context * shape.kv_bytes_per_token(dtype)) / (gpu.bandwidth_gbs * 1e9)
        compute = batch * shape.flops_per_token(context) / (gpu.bf16_tflops * 1e12)
        return batch * self.efficiency / max(memory, compute)

    def forward_seconds(self, shape, gpu: Accelerator, tokens: float, context: float) -> float:
        """A compute-bound forward pass (prefill, calibration, teacher forcing) over ``tokens``."""
        return tokens * shape.flops_per_token(context) / (gpu.bf16_tflops * 1e12 * self.mfu)

    def activation_bytes(self, shape, dtype: str) -> float:
        """vLLM's profiled peak besides weights: one step of ``max_num_batched_tokens`` through the widest layer
        (hidden x 4 + intermediate x 2 activations) plus float32 logits and probabilities of ``max_num_seqs``
        rows, plus ``reserve_gib``."""
        from .shapes import DTYPE_BYTES

        step = self.max_num_batched_tokens * (4 * shape.hidden + 2 * shape.intermediate) * DTYPE_BYTES[dtype]
        return step + self.max_num_seqs * shape.vocab * 8 + self.reserve_gib * GiB

    def kv_pool_bytes(self, shape, gpu: Accelerator, dtype: str, devices: int = 1) -> float:
        """KV cache vLLM allocates: utilisation x memory - weights - activations (per device; weights split over
        ``devices`` with tensor parallelism)."""
        per_device = (self.gpu_memory_utilization * gpu.memory_bytes - shape.weight_bytes(dtype) / devices
                      - self.activation_bytes(shape, dtype))
        return per_device * devices


def engine_run(shape: ModelShape, gpu: Accelerator, engine: EngineModel, dtype: str, gen: Generation,
                      pool: float, devices: int) -> tuple[float, float, int]:
    """(seconds, decode tokens/s, concurrent sequences) of one engine run, steady state: ``gen`` (a
    ``workload.Generation``) decoded by as many sequences at once as ``engine`` allows and the KV ``pool`` (bytes)
    holds at its mean context, on ``devices`` devices (their throughput adds up only in a throughput model)."""
    if gen.generated <= 0:
        return engine.forward_seconds(shape, gpu, gen.prefill, gen.context) + gen.starts * engine.engine_start_s, 0.0, 0
    by_memory = int(pool // max(gen.context * shape.kv_bytes_per_token(dtype), 1))
    batch = max(1, min(engine.max_num_seqs, by_memory, gen.sequences))
    rate = engine.decode_rate(shape, gpu, dtype, batch, gen.context) * (devices if engine.throughput else 1)
    seconds = (gen.generated / rate + engine.forward_seconds(shape, gpu, gen.prefill, gen.context)
               + gen.starts * engine.engine_start_s)
    return seconds, rate, batch
