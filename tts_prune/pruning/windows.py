"""Calibration data: the sources (bundled GSM8K, text/JSONL files, C4 as in the papers) and the windows of
token ids cut from them (wanda / OWL's per-document windows, or packed windows for short documents).

``calibration_batches(tokenizer, source, nsamples, seqlen, seed)`` -> LongTensor (nsamples, seqlen), or for
ShortGPT's own text (``shortgpt``, ``pg19``: see ``pg19.py``) a list of ``nsamples`` whole chunks of any length.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import paths

# Fields that hold text in the JSONL sources we read: GSM8K ("question"/"answer") and generation
# records (reasoning traces written by the evaluation side: "prompt"/"completion", "text", ...).
_TEXT_FIELDS = ("text", "prompt", "question", "problem", "generation", "completion", "response", "output",
                "answer", "solution")


def _read_jsonl(path: Path) -> list[str]:
    # The project's one JSONL reader (paths.read_jsonl: gzip, errors naming file and line); each record's text
    # fields are joined in _TEXT_FIELDS order, records without any text are skipped.
    texts = []
    for record in paths.read_jsonl(path):
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


def _offline_flags() -> str:
    """Which offline switches are on, and the fix: datasets obeys HF_DATASETS_OFFLINE before HF_HUB_OFFLINE."""
    import os

    on = [name for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
          if os.environ.get(name, "").upper() in ("1", "ON", "YES", "TRUE")]
    if not on:
        return ""
    return (f"; {' and '.join(on)} {'is' if len(on) == 1 else 'are'} set: run with HF_HUB_OFFLINE=0 and "
            "HF_DATASETS_OFFLINE=0 (when set, the datasets flag wins over the hub's; the Makefile makes it follow "
            "HF_HUB_OFFLINE)")


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
            f"network or a datasets cache ({type(error).__name__}: {error}){_offline_flags()}. Offline, pass a "
            "local file instead: "
            f"a downloaded {'copy of that shard (same documents, same sampling)' if c4 else 'text/JSONL copy'} as "
            "calibration='/path/to/file.json.gz', or calibration='gsm8k' (bundled)"
        ) from error


def calibration_texts(source: str, nsamples: int = 128, seed: int = 0, tokenizer=None, **context) -> Sequence[str]:
    """Documents of a calibration ``source``.

    ``source`` is a name in ``TEXT_SOURCES`` (``"gsm8k"``: GSM8K training question + solution, bundled;
    ``"builtin"``: the project's own public-domain text in ``data/calibration/``; ``"toy-reasoning"``: the toy
    task's rendered training conversations, which need the ``tokenizer``; ``"shortgpt"`` / ``"pg19"`` /
    ``"shortgpt-offline"``: ShortGPT's calibration text as the authors ran it, see ``pg19.py``; and what a
    higher layer registers, e.g. the study's ``"self-traces"``, with its ``context``), a path to a UTF-8
    ``.txt`` file or a ``.jsonl``/``.jsonl.gz``/``.json.gz`` of records (e.g. reasoning traces, or a downloaded
    C4 shard), or a Hugging Face dataset id such as ``"allenai/c4"`` (prefix ``hf:`` to force it; needs the
    network).
    """
    path = Path(source).expanduser()
    if source in TEXT_SOURCES:
        return TEXT_SOURCES[source].texts(tokenizer=tokenizer, nsamples=nsamples, seed=seed, **context)
    if path.is_file():
        if path.name.endswith((".jsonl", ".jsonl.gz", ".json.gz")):
            return _read_jsonl(path)
        return [path.read_text(encoding="utf-8")]
    if source.startswith("hf:") or (source.count("/") == 1 and not path.exists()):
        return _hf_texts(source.removeprefix("hf:"), nsamples, seed)
    raise FileNotFoundError(
        f"calibration source {source!r} is not one of {sorted(TEXT_SOURCES)}, an existing text/JSONL file or an "
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


def whole_samples(tokenizer, texts: Sequence[str], nsamples: int, seqlen: int, seed: int) -> list[torch.LongTensor]:
    """ShortGPT's samples as the authors draw them: ``min(nsamples, len(texts))`` documents chosen with
    ``random.Random(seed).sample``, each tokenized on its own (no special tokens, no padding) and cut at
    ``seqlen`` tokens. A list of 1-D LongTensors of different lengths (only ShortGPT's Block Influence reads
    it; the other methods need the equal windows of "document" or "packed")."""
    chosen = random.Random(seed).sample(range(len(texts)), min(nsamples, len(texts)))
    samples = [torch.tensor(_tokens(tokenizer, texts[i])[:seqlen], dtype=torch.long) for i in chosen]
    return [s for s in samples if s.numel() > 0]


SAMPLERS = {"document": document_windows, "packed": packed_windows, "samples": whole_samples}


@dataclass(frozen=True)
class TextSource:
    """A named calibration source: ``texts(tokenizer=, nsamples=, seed=, **context)`` -> documents, and the
    ``sampling`` that ``"auto"`` resolves to for it (``SAMPLERS``)."""

    texts: Callable[..., Sequence[str]]
    sampling: str = "document"


def _gsm8k(**_) -> list[str]:
    return _read_jsonl(_bundled("gsm8k_train.jsonl.gz"))


def _builtin(**_) -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted((paths.DATA_DIR / "calibration").glob("*.txt"))]


def _toy_reasoning(tokenizer=None, nsamples: int = 128, seed: int = 0, **_) -> list[str]:
    # The toy reasoner's vocabulary is its task's characters: calibrate on rendered *training* problems
    # (question + scratchpad + answer, in its chat template), never on the test split it is evaluated on.
    from ..models.toy import render
    from ..models.toy_task import make_problems

    if tokenizer is None:
        raise ValueError("calibration source 'toy-reasoning' renders problems in the model's chat template: pass "
                         "the tokenizer (calibration_batches(tokenizer, 'toy-reasoning', ...) does)")
    return [render(tokenizer, p["problem"], p["thinking"], p["answer"])
            for p in make_problems(max(4 * nsamples, 64), seed=seed, split="train")]


def _pg19(strict: bool):
    def texts(**_):
        from .pg19 import shortgpt_texts

        return shortgpt_texts(strict=strict, offline=lambda: calibration_texts("gsm8k"))
    return texts


def _shortgpt_offline(**_):
    from .pg19 import OFFLINE_SOURCE, CalibrationTexts, offline_chunks

    return CalibrationTexts(offline_chunks(calibration_texts("gsm8k")), OFFLINE_SOURCE)


# The one registry of named calibration sources (the pruner's and the notebooks'). Corpora of documents shorter
# than any useful window (GSM8K problems are ~150 tokens, toy conversations ~100) are "packed". ShortGPT's own
# text (pg19.py): "shortgpt" falls back (warned, recorded) to the named offline stand-in, "pg19" never does; each
# chunk is one sample ("samples"), as the authors' script feeds them. Sources that need what only a higher layer
# has (the study's "self-traces": the dense model and the evaluator) are added with ``register_text_source``.
TEXT_SOURCES: dict[str, TextSource] = {
    "gsm8k": TextSource(_gsm8k, "packed"),
    "builtin": TextSource(_builtin),
    "toy-reasoning": TextSource(_toy_reasoning, "packed"),
    "shortgpt": TextSource(_pg19(strict=False), "samples"),
    "pg19": TextSource(_pg19(strict=True), "samples"),
    "shortgpt-offline": TextSource(_shortgpt_offline, "samples"),
}


def register_text_source(name: str, source: TextSource) -> None:
    """Add a named calibration source from a higher layer (the layers import downwards only, so a source that
    needs the evaluator is injected, never imported here)."""
    if source.sampling not in SAMPLERS:
        raise ValueError(f"TextSource sampling={source.sampling!r} is unknown; allowed: {sorted(SAMPLERS)}")
    TEXT_SOURCES[name] = source


def resolve_sampling(source, sampling: str = "auto") -> str:
    """``"auto"`` -> the named source's own sampling (``TEXT_SOURCES``: ``"samples"`` for ShortGPT's text,
    ``"packed"`` for GSM8K and the toy task), ``"packed"`` for lists of texts given directly (short records such
    as rendered problems), else ``"document"`` (C4, any text/JSONL corpus: the reference's windows)."""
    if sampling == "auto":
        if isinstance(source, (list, tuple)):
            return "packed"
        return TEXT_SOURCES[source].sampling if source in TEXT_SOURCES else "document"
    if sampling not in SAMPLERS:
        raise ValueError(f"calibration_sampling={sampling!r} is unknown; allowed: 'auto', {sorted(SAMPLERS)}")
    return sampling


def calibration_batches(tokenizer, source: str | list[str] = "gsm8k", nsamples: int = 128, seqlen: int = 2048,
                        seed: int = 0, sampling: str = "auto", **context):
    """``nsamples`` windows of ``seqlen`` tokens from a calibration source: LongTensor (nsamples, seqlen).

    ``sampling``: ``"document"`` (:func:`document_windows`, wanda / OWL's C4 windows inside one document),
    ``"packed"`` (:func:`packed_windows`, disjoint windows of documents joined by blank lines) or
    ``"auto"`` (:func:`resolve_sampling`), or ``"samples"`` (:func:`whole_samples`: a list of whole documents,
    ShortGPT's text); ``"samples"`` returns a ``pg19.CalibrationTexts`` list whose ``source`` names the text really
    used (e.g. the offline stand-in). ``source`` may also be a list of texts; ``context`` goes to a registered
    source that needs it (the study's ``self-traces``: model, benchmark, budget, store).
    """
    if nsamples < 1 or seqlen < 2:
        raise ValueError(f"nsamples={nsamples}, seqlen={seqlen}: need nsamples >= 1 and seqlen >= 2")
    method = resolve_sampling(source, sampling)
    raw = source if isinstance(source, (list, tuple)) else calibration_texts(source, nsamples, seed, tokenizer,
                                                                                  **context)
    label = source if isinstance(source, str) else "texts"
    texts = list(raw)
    if not texts:
        raise ValueError(f"calibration source {source!r} has no documents; pass a non-empty text/JSONL source")
    ids = SAMPLERS[method](tokenizer, texts, nsamples, seqlen, seed)
    if method == "samples":
        from .pg19 import CalibrationTexts

        return CalibrationTexts(ids, getattr(raw, "source", label))  # the text really used, recorded by prune()
    return ids


