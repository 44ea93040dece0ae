"""Calibration data and the one layer-by-layer loop that every data-driven method shares.

The loop follows Wanda (arXiv 2306.11695) and SparseGPT (arXiv 2301.00774): capture the inputs of the
first decoder block, then for each block in turn let hooks accumulate per-linear statistics, let the
caller prune the block, and feed the block's *pruned* outputs to the next block. Peak memory is the
model plus one block's activations for ``nsamples x seqlen`` tokens; nothing is sized by
``max_position_embeddings``.
"""
from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from .. import paths
from ..models.layers import decoder_layers, prunable_linears

# Fields that hold text in the JSONL sources we read: GSM8K ("question"/"answer") and generation
# records (reasoning traces written by the evaluation side: "prompt"/"completion", "text", ...).
_TEXT_FIELDS = ("text", "prompt", "question", "problem", "generation", "completion", "response", "output",
                "answer", "solution")


class _StopForward(Exception):
    """Private signal that ends the capture forward pass once the block inputs are recorded."""


# ---------------------------------------------------------------------------------------------- data
def _read_jsonl(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    texts = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            record = json.loads(line)
            parts = [str(record[key]) for key in _TEXT_FIELDS if isinstance(record.get(key), str)]
            if parts:
                texts.append("\n".join(parts))
    return texts


def _bundled(name: str) -> Path:
    for folder in (paths.BENCHMARK_DIR, paths.SHARED_BENCHMARK_DIR):
        candidate = folder / name
        if candidate.exists():
            return candidate
    raise FileNotFoundError(
        f"calibration source needs {name}, found neither in {paths.BENCHMARK_DIR} nor in "
        f"{paths.SHARED_BENCHMARK_DIR}; run `make data`, or pass a text/JSONL file path as the source"
    )


def _hf_texts(dataset_id: str, nsamples: int, seed: int) -> list[str]:
    # C4 as in the papers: one validation shard, streamed. Needs the network; not exercised offline.
    from datasets import load_dataset  # imported lazily: optional and slow

    kwargs = {}
    if dataset_id == "allenai/c4":
        kwargs = dict(data_files={"train": "en/c4-train.00000-of-01024.json.gz"})
    data = load_dataset(dataset_id, split="train", streaming=True, **kwargs)
    texts = []
    for record in data.shuffle(seed=seed, buffer_size=10_000):
        texts.append(record.get("text", ""))
        if len(texts) >= 20 * nsamples:
            break
    return texts


def calibration_texts(source: str, nsamples: int = 128, seed: int = 0) -> list[str]:
    """Documents of a calibration ``source``.

    ``source`` is ``"gsm8k"`` (GSM8K training question + solution, bundled), ``"builtin"`` (the
    project's own public-domain text in ``data/calibration/``), a path to a UTF-8 ``.txt`` file or a
    ``.jsonl``/``.jsonl.gz`` of records (e.g. reasoning traces), or a Hugging Face dataset id such as
    ``"allenai/c4"`` (prefix ``hf:`` to force it; needs the network).
    """
    path = Path(source).expanduser()
    if source == "gsm8k":
        return _read_jsonl(_bundled("gsm8k_train.jsonl.gz"))
    if source == "builtin":
        return [p.read_text(encoding="utf-8") for p in sorted((paths.DATA_DIR / "calibration").glob("*.txt"))]
    if path.is_file():
        if path.name.endswith((".jsonl", ".jsonl.gz")):
            return _read_jsonl(path)
        return [path.read_text(encoding="utf-8")]
    if source.startswith("hf:") or (source.count("/") == 1 and not path.exists()):
        return _hf_texts(source.removeprefix("hf:"), nsamples, seed)
    raise FileNotFoundError(
        f"calibration source {source!r} is not 'gsm8k', 'builtin', an existing text/JSONL file or an "
        "'organisation/dataset' Hugging Face id; pass one of those"
    )


def calibration_batches(tokenizer, source: str | list[str] = "gsm8k", nsamples: int = 128, seqlen: int = 2048,
                        seed: int = 0) -> torch.LongTensor:
    """``nsamples`` random windows of ``seqlen`` tokens from a calibration source: LongTensor (nsamples, seqlen).

    Documents are shuffled with ``seed``, joined with the EOS token into one stream (short GSM8K
    solutions are far shorter than 2048 tokens), and windows start at seeded random offsets, as the
    Wanda/SparseGPT loaders draw random C4 windows. ``source`` may also be a list of texts.
    """
    if nsamples < 1 or seqlen < 2:
        raise ValueError(f"nsamples={nsamples}, seqlen={seqlen}: need nsamples >= 1 and seqlen >= 2")
    texts = list(source) if isinstance(source, (list, tuple)) else calibration_texts(source, nsamples, seed)
    rng = random.Random(seed)
    rng.shuffle(texts)
    separator = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    stream: list[int] = []
    # Tokenize only as much as the windows need (plus slack for distinct offsets), not all 7k solutions.
    budget = max(nsamples * seqlen * 2, seqlen + 1)
    for text in texts:
        stream.extend(tokenizer(text, add_special_tokens=False)["input_ids"] + separator)
        if len(stream) >= budget:
            break
    if len(stream) < seqlen:
        raise ValueError(
            f"calibration source has only {len(stream)} tokens but seqlen={seqlen}; use a smaller seqlen "
            "or a larger source"
        )
    ids = torch.tensor(stream, dtype=torch.long)
    starts = [rng.randint(0, len(stream) - seqlen) for _ in range(nsamples)]
    return torch.stack([ids[s:s + seqlen] for s in starts])


# ------------------------------------------------------------------------------------ statistics
@dataclass
class LinearStats:
    """Running input statistics of one linear layer over calibration tokens.

    ``sq_norm`` (in_features,) is sum over tokens of x_j^2, so ||X_j||_2 = sqrt(sq_norm) as Wanda needs;
    ``hessian`` (in_features, in_features) is 2 X X^T / tokens as SparseGPT needs (only if requested).
    """

    sq_norm: torch.Tensor
    hessian: torch.Tensor | None = None
    tokens: int = 0

    def add(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, x.shape[-1]).float()  # (tokens, in_features)
        self.sq_norm += (x * x).sum(0)
        if self.hessian is not None:
            # Running mean keeps the scale independent of the token count (SparseGPT's add_batch).
            n = x.shape[0]
            self.hessian *= self.tokens / (self.tokens + n)
            x = x * (2.0 / (self.tokens + n)) ** 0.5
            self.hessian += x.t() @ x
        self.tokens += x.shape[0]


def _attach_stats(linears: dict[str, nn.Module], hessian: bool) -> tuple[dict[str, LinearStats], list]:
    stats, handles = {}, []
    for name, module in linears.items():
        weight = module.weight
        in_features = weight.shape[1] if isinstance(module, nn.Linear) else weight.shape[0]
        stats[name] = LinearStats(
            torch.zeros(in_features, device=weight.device),
            torch.zeros(in_features, in_features, device=weight.device) if hessian else None,
        )
        handles.append(module.register_forward_hook(lambda _m, args, _out, s=stats[name]: s.add(args[0].detach())))
    return stats, handles


# ------------------------------------------------------------------------------------------ loop
def _to(value, device):
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (tuple, list)):
        return type(value)(_to(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    return value


def _device_of(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def _hidden(output):
    return output[0] if isinstance(output, (tuple, list)) else output


@dataclass
class BlockStep:
    """One decoder block during the walk: its index, the module, and its inputs (one tensor per chunk).

    ``collect()`` runs the block with hooks and returns per-linear statistics; ``run()`` returns the
    block's outputs for the current weights. If the caller sets ``outputs`` (e.g. ShortGPT, which
    needs them anyway and does not change the block), the walk reuses them instead of recomputing.
    """

    index: int
    block: nn.Module
    inputs: list[torch.Tensor]
    kwargs: list[dict]
    outputs: list[torch.Tensor] | None = field(default=None)

    @torch.no_grad()
    def run(self) -> list[torch.Tensor]:
        device = _device_of(self.block)
        return [_hidden(self.block(x.to(device), **kw)) for x, kw in zip(self.inputs, self.kwargs)]

    def collect(self, hessian: bool = False, linears: dict[str, nn.Module] | None = None) -> dict[str, LinearStats]:
        stats, handles = _attach_stats(linears or prunable_linears(self.block), hessian)
        try:
            self.run()
        finally:
            for handle in handles:
                handle.remove()
        return stats


@torch.no_grad()
def capture_inputs(model: nn.Module, input_ids: torch.Tensor, batch_size: int = 1) -> tuple[list, list[list[dict]]]:
    """Inputs of the first block per chunk and, per block, the keyword arguments each chunk gets.

    Hooks on every block record what the model passes it (attention mask, position ids, rotary
    ``position_embeddings``, cache flags), so models whose blocks get different masks (Gemma-2's
    sliding-window layers) are handled. A full pass through all blocks is made only once per distinct
    chunk size; other chunks stop at block 0 with a private exception.
    Returns ``(hidden, kwargs)`` with hidden[c] of shape (chunk, seqlen, hidden) and kwargs[c][layer].
    """
    layers = decoder_layers(model)
    record: dict = {}

    def pre_hook(index, _module, args, kwargs):
        if index == 0:
            record["hidden"] = args[0] if args else kwargs["hidden_states"]
        record.setdefault("kwargs", {})[index] = {k: v for k, v in kwargs.items() if k != "hidden_states"}
        if record["stop_at"] == index:
            raise _StopForward

    handles = [layer.register_forward_pre_hook(lambda m, a, k, i=i: pre_hook(i, m, a, k), with_kwargs=True)
               for i, layer in enumerate(layers)]
    hidden, kwargs, by_size = [], [], {}
    embed_device = model.get_input_embeddings().weight.device
    try:
        for chunk in input_ids.split(batch_size):
            size = chunk.shape[0]
            record.clear()
            record["stop_at"] = 0 if size in by_size else len(layers) - 1
            try:
                model(input_ids=chunk.to(embed_device), use_cache=False)
            except _StopForward:
                pass
            hidden.append(record["hidden"])
            if size not in by_size:
                by_size[size] = [record["kwargs"][i] for i in range(len(layers))]
            kwargs.append(by_size[size])
    finally:
        for handle in handles:
            handle.remove()
    return hidden, kwargs


@torch.no_grad()
def walk_blocks(model: nn.Module, input_ids: torch.Tensor, batch_size: int = 1,
                show_progress: bool = True, desc: str = "blocks") -> Iterator[BlockStep]:
    """Yield a :class:`BlockStep` per decoder block, in order; after the caller is done with a block
    (typically: collect stats, prune it), its outputs with the current weights become the next inputs.

    Each block runs on the device it lives on (``device_map="auto"`` models included).
    """
    layers = decoder_layers(model)
    was_training = model.training
    model.eval()
    hidden, kwargs = capture_inputs(model, input_ids, batch_size)
    try:
        for index in tqdm(range(len(layers)), desc=desc, disable=not show_progress):
            device = _device_of(layers[index])
            step = BlockStep(index, layers[index], [h.to(device) for h in hidden],
                             [_to(kw[index], device) for kw in kwargs])
            yield step
            hidden = step.outputs if step.outputs is not None else step.run()
    finally:
        model.train(was_training)
