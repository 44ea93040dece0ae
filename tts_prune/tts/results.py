"""Append-only, crash-safe result records: one JSON line per request, keyed by the whole request.

Each flush writes ONE new shard: the lines go to a temporary file in the same folder, are fsynced, and
the file is renamed into place with ``os.replace`` (atomic on POSIX). A reader only ever sees complete
shards, so ``kill -9`` in the middle of a sweep loses at most what was not yet flushed and corrupts
nothing; a rerun reads the keys already present and skips them.

Beside each shard ``X.jsonl`` lies its index ``X.index``: the same records without their long texts
(``TEXT_FIELDS``: prompt, thinking, forced end, answer; at 8k-token traces that is ~97% of a shard's bytes).
``keys()`` and ``load_results(columns=...)`` without a text column read the indexes only, and
``load_results(keys=...)`` parses only the shards that hold those keys. The index is renamed into place
before its shard, so an index without a shard (a kill between the two renames) is ignored and a shard is
never visible without its index. Shards written before indexes existed are read whole (backward compatible).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from pathlib import Path

import pandas as pd

from .. import paths

# The whole request: the weights (``model_hash``, the fingerprint of the weights that generate) and the
# name they are reported under, recipe, benchmark and problem, the exact prompt text, the thinking format
# (delimiters, cue, waits text, stops), every decoding parameter (answer budget, waits and min_thinking
# included), the grading mode, the backend, seed and budget. Change any one and the record is made again.
KEY_FIELDS = ("model", "model_hash", "recipe", "benchmark", "problem_id", "prompt", "format_spec", "decoding",
              "grading", "backend", "seed", "budget")
TEXT_FIELDS = ("prompt", "thinking", "forced", "answer")  # left out of a shard's index
EMPTY_COLUMNS = ["key", "model", "benchmark", "problem_id", "budget", "seed", "correct"]


def record_key(record: dict) -> str:
    """Identity of a record: its key fields (nested dicts canonicalised by sorted JSON), hashed."""
    parts = {k: record.get(k) for k in KEY_FIELDS}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _read_lines(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _write_synced(path: Path, lines: list[str]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(lines)
        handle.flush()
        os.fsync(handle.fileno())


class ResultStore:
    """A folder of ``*.jsonl`` shards (each with its ``.index``) under ``root`` (default ``paths.RESULTS_DIR``)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else paths.RESULTS_DIR

    def shards(self) -> list[Path]:
        return sorted(self.root.glob("*.jsonl")) if self.root.is_dir() else []

    def index(self, shard: Path) -> list[dict]:
        """``shard``'s records without their texts: its index file, or the shard itself (minus the texts) when
        it has none (written before indexes existed)."""
        sidecar = shard.with_suffix(".index")
        if sidecar.is_file():
            return _read_lines(sidecar)
        return [{k: v for k, v in record.items() if k not in TEXT_FIELDS} for record in _read_lines(shard)]

    def records(self, columns=None, keys=None) -> list[dict]:
        """Stored records. ``columns``: only these fields (and ``key``); without a text field only the indexes are
        read. ``keys``: only records with these keys; only the shards holding one are parsed."""
        wanted = None if columns is None else list(dict.fromkeys(["key", *columns]))
        texts = wanted is None or bool(set(wanted) & set(TEXT_FIELDS))
        keys = None if keys is None else set(keys)
        out = []
        for shard in self.shards():
            rows = None
            if keys is not None or not texts:
                rows = self.index(shard)
                if keys is not None:
                    rows = [r for r in rows if r["key"] in keys]
                    if not rows:
                        continue
            if texts:
                rows = _read_lines(shard) if keys is None else [r for r in _read_lines(shard) if r["key"] in keys]
            out += rows if wanted is None else [{k: r[k] for k in wanted if k in r} for r in rows]
        return out

    def keys(self) -> set[str]:
        """Keys of every stored record, from the indexes (no thinking text is parsed)."""
        return {r["key"] for shard in self.shards() for r in self.index(shard)}

    def append(self, records: list[dict]) -> Path | None:
        """Write ``records`` as one new shard and its index, atomically; returns the shard (None when empty)."""
        if not records:
            return None
        paths.ensure(self.root)
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        records = [{**record, "key": record.get("key") or record_key(record)} for record in records]
        final = self.root / f"{name}.jsonl"
        lines = [json.dumps(r, default=str) + "\n" for r in records]
        index = [json.dumps({k: v for k, v in r.items() if k not in TEXT_FIELDS}, default=str) + "\n" for r in records]
        for path, text in ((final.with_suffix(".index"), index), (final, lines)):  # the index first (see module doc)
            tmp = self.root / f".{path.name}.tmp"
            _write_synced(tmp, text)
            os.replace(tmp, path)
        return final


def load_results(root: str | os.PathLike | None = None, columns=None, keys=None) -> pd.DataFrame:
    """Every record under ``root`` as a DataFrame (one row per record; duplicates of a key dropped).

    ``columns`` (e.g. ``["budget", "correct", "thinking_tokens"]``) reads only those fields (plus ``key``); when
    none of them is a text field (``TEXT_FIELDS``) no shard text is parsed at all. ``keys`` keeps only those
    records and parses only the shards that hold them."""
    records = ResultStore(root).records(columns=columns, keys=keys)
    if not records:
        return pd.DataFrame(columns=EMPTY_COLUMNS if columns is None else ["key", *columns])
    return pd.DataFrame(records).drop_duplicates("key", keep="last").reset_index(drop=True)
