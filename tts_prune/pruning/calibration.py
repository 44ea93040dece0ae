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
from collections.abc import Iterator, Sequence
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


C4_SHARD = "en/c4-train.00000-of-01024.json.gz"  # the shard wanda / OWL / SparseGPT calibrate on


class _TextColumn(Sequence):
    """The ``text`` field of a (memory-mapped) Hugging Face dataset, read one document at a time."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> str:
        return self.dataset[index]["text"]


def _hf_texts(dataset_id: str, nsamples: int, seed: int) -> list[str]:
    """Documents of a Hugging Face dataset. ``allenai/c4``: every document of the reference shard, in file
    order (so that seeded indices pick the same documents as wanda's ``get_c4``); other ids: 20 x nsamples
    documents of a seeded streaming shuffle. Needs the network (or a warm datasets cache)."""
    from datasets import load_dataset  # imported lazily: optional and slow

    c4 = dataset_id == "allenai/c4"
    try:
        if c4:  # ~356k documents: index the memory-mapped Arrow table instead of copying ~0.8 GB of strings
            return _TextColumn(load_dataset(dataset_id, data_files={"train": C4_SHARD}, split="train"))
        data = load_dataset(dataset_id, split="train", streaming=True)
        texts = []
        for record in data.shuffle(seed=seed, buffer_size=10_000):
            texts.append(record.get("text", ""))
            if len(texts) >= 20 * nsamples:
                break
        return texts
    except Exception as error:  # offline, unknown id, no access: say what was needed and the way out
        what = f"{dataset_id} ({C4_SHARD}, about 320 MB)" if c4 else dataset_id
        raise ConnectionError(
            f"calibration source {dataset_id!r} could not be loaded from the Hugging Face Hub: {what} needs the "
            f"network or a datasets cache ({type(error).__name__}: {error}). Offline, pass a local file instead: "
            f"a downloaded {'copy of that shard (same documents, same sampling)' if c4 else 'text/JSONL copy'} as "
            "calibration='/path/to/file.json.gz', or calibration='gsm8k' (bundled)"
        ) from error


def calibration_texts(source: str, nsamples: int = 128, seed: int = 0) -> Sequence[str]:
    """Documents of a calibration ``source``.

    ``source`` is ``"gsm8k"`` (GSM8K training question + solution, bundled), ``"builtin"`` (the
    project's own public-domain text in ``data/calibration/``), a path to a UTF-8 ``.txt`` file or a
    ``.jsonl``/``.jsonl.gz``/``.json.gz`` of records (e.g. reasoning traces, or a downloaded C4 shard), or a
    Hugging Face dataset id such as ``"allenai/c4"`` (prefix ``hf:`` to force it; needs the network).
    """
    path = Path(source).expanduser()
    if source == "gsm8k":
        return _read_jsonl(_bundled("gsm8k_train.jsonl.gz"))
    if source == "builtin":
        return [p.read_text(encoding="utf-8") for p in sorted((paths.DATA_DIR / "calibration").glob("*.txt"))]
    if path.is_file():
        if path.name.endswith((".jsonl", ".jsonl.gz", ".json.gz")):
            return _read_jsonl(path)
        return [path.read_text(encoding="utf-8")]
    if source.startswith("hf:") or (source.count("/") == 1 and not path.exists()):
        return _hf_texts(source.removeprefix("hf:"), nsamples, seed)
    raise FileNotFoundError(
        f"calibration source {source!r} is not 'gsm8k', 'builtin', an existing text/JSONL file or an "
        "'organisation/dataset' Hugging Face id; pass one of those"
    )


def _tokens(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def document_windows(tokenizer, texts: Sequence[str], nsamples: int, seqlen: int, seed: int) -> torch.LongTensor:
    """wanda / OWL's ``get_c4`` sampling: each window is a contiguous piece of ONE document.

    With ``random.Random(seed)``, per window: draw a document index uniformly until the document has more
    than ``seqlen`` tokens, then a start uniformly in [0, tokens - seqlen - 1]. Documents are taken in the
    given order, so on C4's ``c4-train.00000-of-01024`` shard and the same tokenizer the windows are the
    reference's. One difference: tokens come without special tokens (the reference tokenizes with the
    tokenizer's default, which prepends BOS on Llama tokenizers; Qwen's add none).
    """
    rng = random.Random(seed)
    lengths: dict[int, list[int]] = {}  # document index -> token ids (tokenized once)
    rows = []
    for _ in range(nsamples):
        while True:
            index = rng.randint(0, len(texts) - 1)
            if index not in lengths:
                lengths[index] = _tokens(tokenizer, texts[index])
            if len(lengths[index]) > seqlen:
                break
            if len(lengths) == len(texts) and all(len(t) <= seqlen for t in lengths.values()):
                longest = max(len(t) for t in lengths.values())
                raise ValueError(
                    f"calibration source has no document longer than seqlen={seqlen} tokens (longest: {longest}); "
                    "use a smaller seqlen, a corpus of longer documents, or calibration_sampling='packed' "
                    "(windows across document boundaries)")
        ids = lengths[index]
        start = rng.randint(0, len(ids) - seqlen - 1)
        rows.append(ids[start:start + seqlen])
    return torch.tensor(rows, dtype=torch.long)


def packed_windows(tokenizer, texts: Sequence[str], nsamples: int, seqlen: int, seed: int) -> torch.LongTensor:
    """Windows of a stream of documents joined by a blank line (no special tokens), for corpora of short
    documents (GSM8K problems are ~150 tokens): documents are shuffled with ``seed`` and tokenized until
    the stream holds ``4 x nsamples x seqlen`` tokens (or the corpus ends); the stream is cut into disjoint
    windows and ``nsamples`` of them are drawn without replacement, so no token is used twice.
    """
    rng = random.Random(seed)
    order = list(range(len(texts)))
    rng.shuffle(order)
    separator = _tokens(tokenizer, "\n\n")
    stream: list[int] = []
    for i in order:
        stream.extend(_tokens(tokenizer, texts[i]) + separator)
        if len(stream) >= 4 * nsamples * seqlen:
            break
    available = len(stream) // seqlen
    if available < nsamples:
        raise ValueError(
            f"calibration source has only {len(stream)} tokens: {available} disjoint windows of seqlen={seqlen}, "
            f"but nsamples={nsamples}; use a smaller nsamples or seqlen, or a larger source")
    chosen = sorted(rng.sample(range(available), nsamples))
    return torch.tensor([stream[c * seqlen:(c + 1) * seqlen] for c in chosen], dtype=torch.long)


SAMPLERS = {"document": document_windows, "packed": packed_windows}
PACKED_SOURCES = ("gsm8k",)  # bundled corpora of documents shorter than any useful window


def resolve_sampling(source, sampling: str = "auto") -> str:
    """``"auto"`` -> ``"packed"`` for GSM8K and for lists of texts given directly (short records such as
    rendered problems), else ``"document"`` (C4, any text/JSONL corpus: the reference's windows)."""
    if sampling == "auto":
        return "packed" if isinstance(source, (list, tuple)) or source in PACKED_SOURCES else "document"
    if sampling not in SAMPLERS:
        raise ValueError(f"calibration_sampling={sampling!r} is unknown; allowed: 'auto', {sorted(SAMPLERS)}")
    return sampling


def calibration_batches(tokenizer, source: str | list[str] = "gsm8k", nsamples: int = 128, seqlen: int = 2048,
                        seed: int = 0, sampling: str = "auto") -> torch.LongTensor:
    """``nsamples`` windows of ``seqlen`` tokens from a calibration source: LongTensor (nsamples, seqlen).

    ``sampling``: ``"document"`` (:func:`document_windows`, wanda / OWL's C4 windows inside one document),
    ``"packed"`` (:func:`packed_windows`, disjoint windows of documents joined by blank lines) or
    ``"auto"`` (:func:`resolve_sampling`). ``source`` may also be a list of texts.
    """
    if nsamples < 1 or seqlen < 2:
        raise ValueError(f"nsamples={nsamples}, seqlen={seqlen}: need nsamples >= 1 and seqlen >= 2")
    method = resolve_sampling(source, sampling)
    texts = list(source) if isinstance(source, (list, tuple)) else calibration_texts(source, nsamples, seed)
    if not texts:
        raise ValueError(f"calibration source {source!r} has no documents; pass a non-empty text/JSONL source")
    return SAMPLERS[method](tokenizer, texts, nsamples, seqlen, seed)


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
