"""ShortGPT's calibration text as the authors ran it: paragraphs of PG19's validation books.

The authors' ShortGPT script (OCM-7898/TTS-Pruning, ``Modified-Layer-Pruning-Harms-Inference-Scaling/main.py``
with ``--calibration_data shortgpt --n_samples 100 --max_seq_len 1024``; its loader ``shortgpt_sampled_text``
lives in the predecessor's ``lib/data.py``, keyu-wang-2002/Layer-Pruning-Harms-Inference-Scaling) reads the
50 validation books of PG19 (Rae et al., arXiv 1911.05507: the file list ``data/validation_files.txt`` of the
``deepmind/pg19`` dataset repository, the books from the ``deepmind-gutenberg`` storage bucket), cuts each
book into chunks of whole paragraphs (:func:`paragraph_chunks`) and draws 100 chunks at random. Each chunk is
one calibration sample, tokenized on its own, without padding. Note that ``--max_seq_len 1024`` is a length in
*characters* there (about 250 tokens of English), not tokens.

Differences, on purpose: the books are read in sorted file order and drawn with ``random.Random(seed)`` (theirs
iterate over a Python ``set`` of file names, whose order changes with every process, so their draw cannot be
reproduced); the file list comes from the dataset repository only (theirs also lists the bucket and takes the
union: the same 50 books); downloaded books are cached under ``data/pg19/``.

Without the network, :data:`OFFLINE_SOURCE` ("shortgpt-offline") is the named stand-in: the bundled GSM8K
training records, chunked by the same rule. The ``shortgpt`` source falls back to it with a warning and says
so in what it returns (``CalibrationTexts.source``), which the pruning recipe records; ``pg19`` never falls back.
"""
from __future__ import annotations

import urllib.request
import warnings
from collections.abc import Callable

from .. import paths

DATASET_REPO = "deepmind/pg19"
FILE_LIST = "data/validation_files.txt"
BOOKS_URL = "https://storage.googleapis.com/deepmind-gutenberg/"
CHUNK_CHARS = 1024  # the authors' --max_seq_len, which their loader applies to characters
OFFLINE_SOURCE = "shortgpt-offline"


class CalibrationTexts(list):
    """A list of documents that remembers which source really gave them (``source``)."""

    def __init__(self, texts, source: str):
        super().__init__(texts)
        self.source = source


def paragraph_chunks(text: str, max_chars: int = CHUNK_CHARS) -> list[str]:
    """The authors' chunking of one book: its non-empty lines (stripped) are paragraphs, joined with spaces
    while the chunk stays within ``max_chars`` (counting one separator per paragraph). A paragraph that does
    not fit closes the chunk and starts the next one whole (so a chunk can exceed ``max_chars``); a paragraph
    that does not fit an empty chunk is cut to ``max_chars`` and stands alone."""
    chunks, current, length = [], [], 0
    for paragraph in (line.strip() for line in text.split("\n")):
        if not paragraph:
            continue
        if length + len(paragraph) + 1 <= max_chars:
            current.append(paragraph)
            length += len(paragraph) + 1
        elif current:
            chunks.append(" ".join(current))
            current, length = [paragraph], len(paragraph)
        else:
            chunks.append(paragraph[:max_chars])
            length = 0
    if current:
        chunks.append(" ".join(current))
    return chunks


def _download(url: str, timeout: float = 30.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (a fixed https URL)
        return response.read().decode("utf-8", errors="replace")


def validation_books(fetch: Callable[[str], str] = _download, cache=None) -> list[str]:
    """The texts of PG19's validation books, in sorted file order; each book is downloaded once into ``cache``
    (default ``data/pg19/``). Needs the network (the file list honours ``HF_HUB_OFFLINE`` and its cache)."""
    from huggingface_hub import hf_hub_download

    listing = hf_hub_download(DATASET_REPO, FILE_LIST, repo_type="dataset")
    names = sorted({line.strip() for line in open(listing, encoding="utf-8") if line.strip().startswith("validation/")})
    if not names:
        raise ValueError(f"{DATASET_REPO}/{FILE_LIST} lists no validation book")
    cache = paths.ensure(paths.DATA_DIR / "pg19") if cache is None else paths.ensure(cache)
    books = []
    for name in names:
        local = cache / name.replace("/", "_")
        if not local.is_file():
            local.write_text(fetch(BOOKS_URL + name), encoding="utf-8")
        books.append(local.read_text(encoding="utf-8"))
    return books


def shortgpt_texts(strict: bool = False, fetch: Callable[[str], str] = _download, cache=None,
                   offline: Callable[[], list[str]] | None = None) -> CalibrationTexts:
    """Every chunk of every PG19 validation book (``source`` "pg19"). Unreachable: ``strict`` raises a
    ``ConnectionError``; otherwise a warning, and the chunks of :data:`OFFLINE_SOURCE` (``offline()``: the bundled
    GSM8K training texts, which ``windows`` passes in) with ``source`` saying so."""
    try:
        books = validation_books(fetch, cache)
    except Exception as error:  # offline, no access, changed layout: say what was needed
        reason = f"{type(error).__name__}: {error}"
        if strict:
            raise ConnectionError(
                f"calibration source 'pg19' needs the network ({DATASET_REPO}/{FILE_LIST} and {BOOKS_URL}) or a "
                f"filled cache in data/pg19/ ({reason}). Offline, use calibration='{OFFLINE_SOURCE}' (bundled "
                "GSM8K text chunked the same way) or 'shortgpt' (which falls back to it and records that)") from error
        warnings.warn(f"ShortGPT's calibration text (PG19 validation books) could not be loaded ({reason}); using "
                      f"'{OFFLINE_SOURCE}' (bundled GSM8K training text, chunked the same way) instead. The recipe "
                      "records this; pass calibration='pg19' to make it an error.", stacklevel=3)
        if offline is None:
            raise ConnectionError(f"PG19 is unreachable ({reason}) and no offline texts were given") from error
        return CalibrationTexts(offline_chunks(offline()), f"{OFFLINE_SOURCE} (PG19 unreachable: {reason[:200]})")
    return CalibrationTexts([c for book in books for c in paragraph_chunks(book)], "pg19")


def offline_chunks(texts: list[str]) -> list[str]:
    """:data:`OFFLINE_SOURCE`: ``texts`` (the bundled GSM8K training records), each chunked by
    :func:`paragraph_chunks`."""
    return [c for text in texts for c in paragraph_chunks(text)]
