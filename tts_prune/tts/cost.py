"""What one model variant costs to run, measured by the backend that evaluated it, on the machine that ran it.

``measure_cost(engine, model, out=...)`` runs a short fixed probe on an open engine (``tts_prune.open_engine``)
and returns one cost record, stored as ``<out>/<key>.json``:

- **decode**: seconds per decode step at each probed batch size (every sequence of the batch gains one token per
  step, so this is the seconds per token of one sequence) and the batch's tokens per second;
- **prefill**: seconds per prompt token (the batch's prefill time over its prompt tokens);
- **memory**: on CUDA with the transformers backend, ``torch.cuda.max_memory_allocated`` over the probe (weights,
  KV cache and activations). Elsewhere the weights' resident bytes plus the KV cache at the probe's length
  (analytic, ``memory_source`` says which): a CPU process's peak RSS is a high-water mark of everything it ever
  did, and vLLM runs its model in another process and reserves ``gpu_memory_utilization`` of the GPU anyway;
- **FLOPs**: ``flops.token_flops`` of the model (ShortGPT's removed blocks not counted, unstructured zeros counted
  as dense work since no sparse kernel runs), per token at the probe's mean context and as coefficients from
  which 05 computes each record's FLOPs at its own length.

The probe is random token ids (seeded) of ``prompt_tokens`` per sequence, then ``decode_tokens`` greedy steps;
``warmup`` untimed runs, then the median of ``repeats`` timed ones. It times the model, not a whole evaluation:
the evaluation's own timings mix grading, scheduling and the store. The transformers probe is one prefill forward
and a loop of one-token forwards on the KV cache (what ``generation.sweep_batch`` does per step); the vLLM probe
is the engine's ``generate`` on a batch at ``max_tokens = 1`` (prefill) and ``1 + decode_tokens`` (EOS held off
by ``min_tokens``), each repeat on new prompts so the prefix cache never answers.

The key is the whole request: the weights' fingerprint, the backend, the device (accelerator name, or the CPU
and its thread count), the model's dtype and the probe. A changed request is measured again, never read back.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .flops import kv_cache_bytes, token_flops


@dataclass(frozen=True)
class CostProbe:
    """The probe: ``batch_sizes`` (empty: the evaluation's width, ``evaluation_width``), ``prompt_tokens`` and
    ``decode_tokens`` per sequence, ``warmup`` untimed and ``repeats`` timed runs (medians), ``seed`` of the ids."""

    batch_sizes: tuple[int, ...] = ()
    prompt_tokens: int = 128
    decode_tokens: int = 32
    warmup: int = 1
    repeats: int = 3
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "batch_sizes", tuple(int(b) for b in self.batch_sizes))
        if any(b < 1 for b in self.batch_sizes):
            raise ValueError(f"CostProbe.batch_sizes={self.batch_sizes}: every batch size must be >= 1")
        for name, low in (("prompt_tokens", 1), ("decode_tokens", 2), ("warmup", 0), ("repeats", 1)):
            if getattr(self, name) < low:
                raise ValueError(f"CostProbe.{name}={getattr(self, name)} must be >= {low}")

    def describe(self) -> dict:
        return asdict(self)


def evaluation_width(backend) -> int:
    """The batch the evaluation decoded at: the transformers backend's rows per chunk; vLLM's running requests
    (its scheduler runs at most ``max_num_seqs``, 256 by default, of the requests in flight)."""
    if backend.name == "vllm":
        return min(int(backend.max_in_flight), int(getattr(backend, "_options", {}).get("max_num_seqs", 256)))
    return int(backend.chunk_rows)


def device_label(device: torch.device | str) -> str:
    """``cuda:<name>`` for a GPU; ``cpu:<machine> x<threads> threads`` for the CPU (threads change the cost)."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"{device.type}:{platform.machine() or 'unknown'} x{torch.get_num_threads()} threads"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_times(run, probe: CostProbe) -> tuple[float, ...]:
    """Per-field medians of ``run()``'s timings over ``probe.repeats`` runs after ``probe.warmup`` untimed ones."""
    for _ in range(probe.warmup):
        run()
    samples = [run() for _ in range(probe.repeats)]
    return tuple(statistics.median(column) for column in zip(*samples))


def _random_ids(vocab: int, shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, vocab, shape, generator=generator)


def _weights_bytes(model) -> int:
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


def _probe_transformers(backend, model, probe: CostProbe, batch: int, generator: torch.Generator) -> dict:
    model = backend.model
    device = next(model.parameters()).device
    vocab = model.get_input_embeddings().num_embeddings
    # Only the last position's logits: at 8k prompt tokens and a 152k vocabulary, full logits are GBs per row.
    import inspect

    keep = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}

    def run() -> tuple[float, float]:
        ids = _random_ids(vocab, (batch, probe.prompt_tokens), generator).to(device)
        with torch.inference_mode():
            _sync(device)
            start = time.perf_counter()
            out = model(input_ids=ids, use_cache=True, **keep)
            _sync(device)
            prefill = time.perf_counter() - start
            past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
            start = time.perf_counter()
            for _ in range(probe.decode_tokens):
                out = model(input_ids=token, past_key_values=past, use_cache=True)
                past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
            _sync(device)
            return prefill, (time.perf_counter() - start) / probe.decode_tokens

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    prefill, step = _median_times(run, probe)
    if device.type == "cuda":
        memory = {"peak_memory_bytes": int(torch.cuda.max_memory_allocated(device)),
                  "memory_source": "torch.cuda.max_memory_allocated"}
    else:
        memory = None
    return {"prefill_s": prefill, "decode_step_s": step, **(memory or {})}


def _probe_vllm(backend, model, probe: CostProbe, batch: int, generator: torch.Generator) -> dict:
    from .stream import Request

    engine = backend.engine  # starts vLLM (and saves the artifact) if no sweep has yet
    vocab = model.get_input_embeddings().num_embeddings

    def request(tokens: int) -> Request:
        return Request(max_tokens=tokens, temperature=0.0, top_p=1.0, top_k=0, seed=probe.seed, stop_token_ids=(),
                       min_tokens=tokens)

    def timed(tokens: int) -> float:
        prompts = _random_ids(vocab, (batch, probe.prompt_tokens), generator).tolist()  # new: no prefix-cache hit
        start = time.perf_counter()
        outputs = engine.generate(prompts, [request(tokens)] * batch)
        seconds = time.perf_counter() - start
        if any(len(o) != tokens for o in outputs):
            raise RuntimeError(f"the vLLM cost probe asked for {tokens} tokens per sequence and got "
                               f"{sorted({len(o) for o in outputs})}; the engine ignored min_tokens")
        return seconds

    def run() -> tuple[float, float]:
        prefill = timed(1)
        return prefill, (timed(1 + probe.decode_tokens) - prefill) / probe.decode_tokens

    prefill, step = _median_times(run, probe)
    return {"prefill_s": prefill, "decode_step_s": step}


PROBES = {"transformers": _probe_transformers, "vllm": _probe_vllm}


def cost_key(fingerprint: str, backend: str, device: str, dtype: str, probe: CostProbe, batch_sizes) -> str:
    """Identity of a cost request: weights, backend, device, dtype and the probe (its resolved batch sizes)."""
    parts = {"fingerprint": fingerprint, "backend": backend, "device": device, "dtype": dtype,
             "probe": {**probe.describe(), "batch_sizes": list(batch_sizes)}}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def _write_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    temporary.write_text(json.dumps(data, indent=1, default=str))
    os.replace(temporary, path)


def measure_cost(engine, model, out=None, probe: CostProbe | None = None, name: str | None = None) -> dict:
    """The cost record of ``model`` on ``engine`` (an ``Engine`` or a backend), stored in ``out`` when given.

    ``model`` is the in-memory HF model the engine evaluates (its shapes give the FLOPs and, for the transformers
    backend, it is what runs; after vLLM starts it sits on the CPU and is only read). A record already in ``out``
    under the same key is returned as stored: the same weights on the same device and backend with the same probe.
    """
    probe = probe or CostProbe()
    backend = getattr(engine, "backend", engine)
    if backend.name not in PROBES:
        raise ValueError(f"no cost probe for backend {backend.name!r}; probes exist for {sorted(PROBES)}")
    sizes = probe.batch_sizes or (evaluation_width(backend),)
    on = next(model.parameters()).device if backend.name == "transformers" else (
        torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
    device, dtype = device_label(on), str(next(model.parameters()).dtype).replace("torch.", "")
    key = cost_key(backend.fingerprint, backend.name, device, dtype, probe, sizes)
    target = Path(out) / f"{key}.json" if out is not None else None
    if target is not None and target.is_file():
        return json.loads(target.read_text())
    flops = token_flops(model)
    weights = _weights_bytes(model)
    generator = torch.Generator().manual_seed(probe.seed)
    element = next(model.parameters()).element_size()
    rows = []
    for batch in sizes:
        measured = PROBES[backend.name](backend, model, probe, batch, generator)
        positions = probe.prompt_tokens + probe.decode_tokens
        measured.setdefault("peak_memory_bytes", weights + kv_cache_bytes(flops, positions, batch, element))
        measured.setdefault("memory_source", "weights + KV cache at the probe's length (analytic)")
        rows.append({"batch_size": batch, **measured,
                     "prefill_s_per_token": measured["prefill_s"] / (batch * probe.prompt_tokens),
                     "decode_tokens_per_s": batch / measured["decode_step_s"]})
    context = probe.prompt_tokens + probe.decode_tokens / 2
    record = {"key": key, "model": name or (engine.name if engine is not backend else None),
              "model_hash": backend.fingerprint, "backend": backend.name, "device": device, "dtype": dtype,
              "probe": probe.describe(), "evaluation_batch": int(sizes[0]), "measurements": rows,
              "flops": flops.describe(), "mean_probe_context": context,
              "flops_per_token_at_probe_context": flops.per_token(context), "weights_bytes": weights,
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    record = json.loads(json.dumps(record))  # as a reader of the file sees it (lists, not tuples)
    if target is not None:
        _write_atomic(target, record)
    return record


def load_costs(root) -> list[dict]:
    """Every cost record stored under ``root`` (``[]`` when there is none)."""
    root = Path(root)
    return [json.loads(p.read_text()) for p in sorted(root.glob("*.json"))] if root.is_dir() else []


PROMPTS_DIR = "prompt_tokens"  # beside the cost records: <model_hash>.json, {benchmark: {problem_id: tokens}}


def save_prompt_tokens(out, records, tokenizer) -> dict:
    """Store the prompt length in tokens of every (benchmark, problem) in ``records`` (one model's, as 04 holds
    them after its evaluation) under ``<out>/prompt_tokens/<model_hash>.json``, merged with what is there: the
    prefill term of 05's seconds per problem. Returns ``{benchmark: {problem_id: tokens}}`` for those records."""
    hashes = set(records["model_hash"])
    if len(hashes) != 1:
        raise ValueError(f"save_prompt_tokens: the records hold weights {sorted(hashes)}; pass one model's records")
    target = Path(out) / PROMPTS_DIR / f"{hashes.pop()}.json"
    stored = json.loads(target.read_text()) if target.is_file() else {}
    counts: dict = {}
    for (benchmark, problem), prompt in records.groupby(["benchmark", "problem_id"])["prompt"].first().items():
        counts.setdefault(str(benchmark), {})[str(problem)] = len(tokenizer(prompt, add_special_tokens=False)
                                                                  ["input_ids"])
    for benchmark, table in counts.items():
        stored[benchmark] = {**stored.get(benchmark, {}), **table}
    _write_atomic(target, stored)
    return counts


def load_prompt_tokens(root) -> list[dict]:
    """Rows ``{model_hash, benchmark, problem_id, prompt_tokens}`` of every stored prompt length under ``root``."""
    folder = Path(root) / PROMPTS_DIR
    rows = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        for benchmark, table in json.loads(path.read_text()).items():
            rows += [{"model_hash": path.stem, "benchmark": benchmark, "problem_id": problem, "prompt_tokens": n}
                     for problem, n in table.items()]
    return rows


def evaluation_cost(engine, model, tokenizer, records, out, name: str | None = None, **probe) -> dict:
    """04's call, on its open engine after the evaluation: store the prompt lengths of ``records`` (this variant's),
    then measure with the probe at the evaluation's mean decode context (``CostProbe`` keywords in ``probe``
    override it): its mean prompt plus half its mean generated tokens, rounded up to 64 so a rerun with the same
    records asks the same question, and a 7B model at 8k budgets is timed at the context it decoded at."""
    lengths = save_prompt_tokens(out, records, tokenizer)
    prompt = sum(n for table in lengths.values() for n in table.values()) / max(
        1, sum(len(table) for table in lengths.values()))
    generated = float((records["thinking_tokens"] + records.get("answer_tokens", 0)).mean())
    context = int(-(-(prompt + generated / 2) // 64) * 64)
    return measure_cost(engine, model, out=out, probe=CostProbe(**{"prompt_tokens": max(context, 64), **probe}),
                        name=name)
