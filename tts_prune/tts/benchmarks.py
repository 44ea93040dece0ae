"""The task registry: each benchmark's files and hub source, test problems, grader kind, training pool and
calibration text (``Benchmark``), and ``tts-prune data`` that fills data/benchmarks/.

Every loader returns problems as dicts ``{"id", "problem", "answer"}`` (plus ``choices`` for multiple
choice), where ``problem`` is the user-message text the prompt builder sends. Real sets are read from
``paths.BENCHMARK_DIR`` with the project's one JSONL reader (``paths.read_jsonl``); GSM8K is parsed in one
place (``gsm8k_problems``) for its test set and its training pool; procedural sets come from reasoning-gym
(offline, seeded) and ``toy-reasoning`` from ``tts_prune.models.toy_task``. A path to a ``.jsonl`` file is a
user's own set, graded like MATH. ``<name>@train`` / ``<name>@validation`` are the disjoint training and
validation problems drawn from a task's pool (``split_problems``; the hash split is ``splits``).

GPQA Diamond (Rein et al., arXiv 2311.12022) asks that its questions never appear in plain text online:
options are shuffled with a per-question seed and records keep only a hash in printable fields
(``redact``). ``gpqa-diamond-openai`` is the same set as the paper's harness asks it (s1's lm-evaluation-harness
task ``gpqa_diamond_openai``): its prompt (no instruction) and its shuffle (``gpqa.gpqa_openai_problems``).
"""
from __future__ import annotations

import gzip
import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import paths
from ..paths import read_jsonl  # noqa: F401  (the project's one JSONL reader, re-exported)
from .gpqa import LETTERS, gpqa_openai_problems, gpqa_problem, question_hash  # noqa: F401  (re-exported)
from .splits import DEFAULT_SIZE, SPLITS, split_of



@dataclass(frozen=True)
class Benchmark:
    """One task of the registry: its files and hub source, its test problems, grader kind, training pool and
    calibration text. ``train`` (n, seed) -> problems is the task's own training data, from which
    ``splits`` draws its disjoint ``train`` / ``validation`` problems (None: the default pool, GSM8K train);
    ``calibration`` names the pruner's text source drawn from the same training data (``pruning.windows.
    TEXT_SOURCES``), the one a study calibrates on for this task."""

    name: str
    loader: Callable[[int | None, int], list[dict]]   # (limit, seed) -> test problems
    grader: str                                      # key of grading.GRADERS
    files: tuple[str, ...] = ()                      # under paths.BENCHMARK_DIR
    hub: tuple[str, str, str | None] = ("", "", None)  # (dataset id, split, config) for `tts-prune data`
    secret: bool = False                             # never print problem text (GPQA)
    train: Callable[[int, int], list[dict]] | None = None  # (n, seed) -> training problems (None: the default pool)
    calibration: str | None = None                   # pruning.windows.TEXT_SOURCES name drawn from ``train``


def _take(rows: list[dict], limit: int | None) -> list[dict]:
    return rows if limit is None else rows[:limit]


def _local(name: str) -> Path:
    return paths.BENCHMARK_DIR / name


def load_math500(limit, seed):
    rows = read_jsonl(_local("math500.jsonl"))
    return _take([{"id": r.get("unique_id", f"math500-{i}"), "problem": r["problem"], "answer": r["answer"]}
                  for i, r in enumerate(rows)], limit)


def _simple(filename: str, prefix: str):
    def load(limit, seed):
        rows = read_jsonl(_local(filename))
        return _take([{"id": f"{prefix}-{r.get('id', i)}", "problem": r["problem"], "answer": str(r["answer"])}
                      for i, r in enumerate(rows)], limit)
    return load


def gsm8k_problems(filename: str, prefix: str) -> list[dict]:
    """GSM8K rows as problems, parsed in this one place: the question, and the gold number after ``####``."""
    path = _local(filename)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: GSM8K ({filename}) is bundled by `make data`; run it")
    return [{"id": f"{prefix}-{i}", "problem": r["question"], "answer": r["answer"].split("####")[-1].strip()}
            for i, r in enumerate(read_jsonl(path))]


def load_gsm8k(limit, seed):
    return _take(gsm8k_problems("gsm8k_test.jsonl", "gsm8k"), limit)


def gsm8k_train(n, seed):
    return gsm8k_problems("gsm8k_train.jsonl.gz", "gsm8k-train")  # every row: splits hashes and draws from them


def load_gpqa(limit, seed):
    return _take([gpqa_problem(r) for r in read_jsonl(_local("gpqa_diamond.jsonl.gz"))], limit)


def load_gpqa_openai(limit, seed):
    return _take(gpqa_openai_problems(read_jsonl(_local("gpqa_diamond.jsonl.gz")), seed), limit)


def _gym(task: str):
    def load(limit, seed):
        import reasoning_gym

        size = limit if limit is not None else 200
        data = reasoning_gym.create_dataset(task, size=size, seed=seed)
        return [{"id": f"{task}-{seed}-{i}", "problem": x["question"], "answer": str(x["answer"])}
                for i, x in enumerate(data)]
    return load


def _toy_problems(n: int, seed: int, split: str) -> list[dict]:
    from ..models.toy_task import make_problems  # lazy: the toy task belongs to the toy reasoner

    return [{"id": p["id"], "problem": p["problem"], "answer": str(p["answer"])}
            for p in make_problems(n, seed=seed, split=split)]


def load_toy(limit, seed):
    return _toy_problems(limit if limit is not None else 200, seed, "test")


def toy_train(n, seed):
    # Enough of the toy *train* split that both of splits' sub-splits (train, validation) have n problems.
    return _toy_problems(max(8 * n, 64), seed, "train")


def load_user_file(path: Path, limit=None) -> list[dict]:
    """A user's JSONL set: ``problem`` and ``answer`` per line, optional ``id`` and ``choices``."""
    problems = []
    for number, row in enumerate(read_jsonl(path), start=1):
        missing = [k for k in ("problem", "answer") if k not in row]
        if missing:
            raise ValueError(f"{path}:{number}: missing field(s) {missing}; each line needs 'problem' and 'answer'")
        text = str(row["problem"])
        if row.get("choices"):
            text += "\n\n" + "\n".join(f"({LETTERS[k]}) {c}" for k, c in enumerate(row["choices"]))
        problems.append({"id": str(row.get("id", f"{Path(path).stem}-{number}")), "problem": text,
                         "answer": str(row["answer"])})
    return _take(problems, limit)


BENCHMARKS: dict[str, Benchmark] = {
    "math500": Benchmark("math500", load_math500, "math", ("math500.jsonl",), ("HuggingFaceH4/MATH-500", "test", None)),
    "aime24": Benchmark("aime24", _simple("aime24.jsonl", "aime24"), "math", ("aime24.jsonl",),
                        ("Maxwell-Jia/AIME_2024", "train", None)),
    "amc23": Benchmark("amc23", _simple("amc23.jsonl", "amc23"), "math", ("amc23.jsonl",), ("math-ai/amc23", "test", None)),
    "gpqa-diamond": Benchmark("gpqa-diamond", load_gpqa, "choice", ("gpqa_diamond.jsonl.gz",),
                              ("Idavidrein/gpqa", "train", "gpqa_diamond"), secret=True),
    "gpqa-diamond-openai": Benchmark("gpqa-diamond-openai", load_gpqa_openai, "choice", ("gpqa_diamond.jsonl.gz",),
                                     ("Idavidrein/gpqa", "train", "gpqa_diamond"), secret=True),
    "gsm8k": Benchmark("gsm8k", load_gsm8k, "numeric", ("gsm8k_test.jsonl", "gsm8k_train.jsonl.gz"),
                       ("openai/gsm8k", "test", "main"), train=gsm8k_train, calibration="gsm8k"),
    "chain_sum": Benchmark("chain_sum", _gym("chain_sum"), "numeric"),
    "basic_arithmetic": Benchmark("basic_arithmetic", _gym("basic_arithmetic"), "math"),
    "gsm_symbolic": Benchmark("gsm_symbolic", _gym("gsm_symbolic"), "numeric"),
    "toy-reasoning": Benchmark("toy-reasoning", load_toy, "numeric", train=toy_train, calibration="toy-reasoning"),
}


DEFAULT_POOL = "gsm8k"  # the pool of every task without training data of its own (MATH500, AIME, GPQA, ...)


def pool_of(benchmark: str) -> str:
    """The registered task whose training problems (``Benchmark.train``) hold ``benchmark``'s splits."""
    spec = BENCHMARKS.get(benchmark)
    return benchmark if spec is not None and spec.train is not None else DEFAULT_POOL


def split_problems(benchmark: str, split: str, n: int | None = None, seed: int = 0) -> list[dict]:
    """``n`` problems (default 64) of ``split`` ("train" or "validation") for ``benchmark``, disjoint from its
    test problems and from the other split (``splits.split_of``); shuffled by ``seed``."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is unknown; use one of {SPLITS} (the test split is the benchmark itself)")
    n = DEFAULT_SIZE if n is None else n
    if n < 1:
        raise ValueError(f"n={n} must be a positive number of problems")
    pool = pool_of(benchmark)
    problems = [p for p in BENCHMARKS[pool].train(n, seed) if split_of(p["problem"]) == split]
    random.Random(f"{benchmark}/{split}/{seed}").shuffle(problems)
    if len(problems) < n:
        raise ValueError(f"the {pool} pool has only {len(problems)} {split} problems; ask for fewer")
    return [{**p, "id": f"{split}-{p['id']}"} for p in problems[:n]]


def resolve(benchmark: str) -> tuple[Benchmark, Callable]:
    """(Benchmark, loader) for a registered name, ``<name>@train`` / ``<name>@validation`` (its disjoint
    training problems, see ``splits``), or a path to a user's .jsonl file."""
    if benchmark in BENCHMARKS:
        spec = BENCHMARKS[benchmark]
        return spec, spec.loader
    base, _, split = benchmark.partition("@")
    if base in BENCHMARKS:
        if split not in SPLITS:
            raise ValueError(f"benchmark {benchmark!r}: split {split!r} is unknown; use {base}@train or {base}@validation")
        spec = Benchmark(benchmark, lambda limit, seed: split_problems(base, split, limit, seed),
                         BENCHMARKS[pool_of(base)].grader)
        return spec, spec.loader
    path = Path(benchmark).expanduser()
    if path.suffix in (".jsonl", ".gz") or path.exists():
        spec = Benchmark(path.stem, lambda limit, seed: load_user_file(path, limit), "math")
        return spec, spec.loader
    raise ValueError(f"benchmark {benchmark!r} is neither registered ({', '.join(BENCHMARKS)}) "
                     "nor a path to a .jsonl file with 'problem' and 'answer' fields")


def load_benchmark(benchmark: str, limit: int | None = None, seed: int = 0) -> list[dict]:
    """Problems of ``benchmark`` (name or .jsonl path), the first ``limit`` of them."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit={limit} must be a positive number of problems (or None for all)")
    return resolve(benchmark)[1](limit, seed)


def available(name: str) -> bool:
    """Whether a registered benchmark can load (its files are present; procedural sets always)."""
    spec = BENCHMARKS[name]
    return all((paths.BENCHMARK_DIR / f).exists() for f in spec.files)


def redact(problem: dict | str, secret: bool = True) -> str:
    """Printable form of a problem for reports: a hash for secret sets (GPQA), the text otherwise."""
    text = problem["problem"] if isinstance(problem, dict) else str(problem)
    return f"[redacted {question_hash(text)}]" if secret else text


# ----------------------------------------------------------------------------- `tts-prune data`
def fetch(target: Path | None = None, source: Path | None = None, show_progress: bool = True) -> list[Path]:
    """Fill ``target`` (BENCHMARK_DIR) from the shared folder when present, else from the hub with datasets."""
    target = paths.ensure(Path(target or paths.BENCHMARK_DIR))
    source = Path(source or paths.SHARED_BENCHMARK_DIR)
    written = []
    for spec in BENCHMARKS.values():
        for filename in spec.files:
            dest = target / filename
            if dest.exists():
                continue
            if (source / filename).exists():
                # copy then rename: a reader (another test worker, a notebook) never sees half a file
                part = dest.with_name(f".{dest.name}.{os.getpid()}.part")
                shutil.copyfile(source / filename, part)
                os.replace(part, dest)
            else:
                _download(spec, filename, dest)
            written.append(dest)
            if show_progress:
                print(f"wrote {dest}")
    return written


def _download(spec: Benchmark, filename: str, dest: Path) -> None:
    from datasets import load_dataset

    hub_id, split, config = spec.hub
    if filename == "gsm8k_train.jsonl.gz":
        split = "train"
    try:
        data = load_dataset(hub_id, config, split=split)
    except Exception as error:  # offline, gated (GPQA needs an accepted licence and a token), renamed
        raise FileNotFoundError(f"{filename}: not in {paths.SHARED_BENCHMARK_DIR} and the hub copy {hub_id} "
                                f"failed ({error}); set HF_HUB_OFFLINE=0 (and HF_DATASETS_OFFLINE=0 if set: it wins in "
                                "datasets) and log in, or copy the file in") from error
    opener = gzip.open if filename.endswith(".gz") else open
    tmp = dest.with_suffix(dest.suffix + ".tmp")
    with opener(tmp, "wt", encoding="utf-8") as handle:
        for row in data:
            row = {k.lower() if k in ("Problem", "Answer") else k: v for k, v in row.items()}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(dest)


def add_arguments(parser) -> None:
    parser.add_argument("--target", default=None, help=f"folder to fill (default {paths.BENCHMARK_DIR})")
    parser.add_argument("--source", default=None, help=f"shared copies (default {paths.SHARED_BENCHMARK_DIR})")


def run(args) -> int:
    written = fetch(args.target, args.source)
    print(f"{len(written)} benchmark file(s) written; present: "
          + ", ".join(n for n in BENCHMARKS if available(n)))
    return 0
