"""Append-only, crash-safe result records: one JSON line per request, keyed by the whole request.

Each flush writes ONE new shard: the lines go to a temporary file in the same folder, are fsynced, and
the file is renamed into place with ``os.replace`` (atomic on POSIX). A reader only ever sees complete
shards, so ``kill -9`` in the middle of a sweep loses at most the batch being generated and corrupts
nothing; a rerun reads the keys already present and skips them.
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


def record_key(record: dict) -> str:
    """Identity of a record: its key fields (nested dicts canonicalised by sorted JSON), hashed."""
    parts = {k: record.get(k) for k in KEY_FIELDS}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


class ResultStore:
    """A folder of ``*.jsonl`` shards under ``root`` (default ``paths.RESULTS_DIR``)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else paths.RESULTS_DIR

    def shards(self) -> list[Path]:
        return sorted(self.root.glob("*.jsonl")) if self.root.is_dir() else []

    def records(self) -> list[dict]:
        out = []
        for shard in self.shards():
            with open(shard, encoding="utf-8") as handle:
                out += [json.loads(line) for line in handle if line.strip()]
        return out

    def keys(self) -> set[str]:
        return {r["key"] for r in self.records()}

    def append(self, records: list[dict]) -> Path | None:
        """Write ``records`` as one new shard, atomically; returns its path (None when empty)."""
        if not records:
            return None
        paths.ensure(self.root)
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp, final = self.root / f".{name}.tmp", self.root / f"{name}.jsonl"
        with open(tmp, "w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps({**record, "key": record.get("key") or record_key(record)},
                                        default=str) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
        return final


def load_results(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """Every record under ``root`` as a DataFrame (one row per record; duplicates of a key dropped)."""
    records = ResultStore(root).records()
    if not records:
        return pd.DataFrame(columns=["key", "model", "benchmark", "problem_id", "budget", "seed", "correct"])
    return pd.DataFrame(records).drop_duplicates("key", keep="last").reset_index(drop=True)
