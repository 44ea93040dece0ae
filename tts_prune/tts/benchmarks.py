"""The benchmark registry: name -> (loader, grader kind), and ``tts-prune data`` that fills data/benchmarks/.

Every loader returns problems as dicts ``{"id", "problem", "answer"}`` (plus ``choices`` for multiple
choice), where ``problem`` is the user-message text the prompt builder sends. Real sets are read from
``paths.BENCHMARK_DIR``; procedural sets come from reasoning-gym (offline, seeded) and ``toy-reasoning``
from ``tts_prune.models.toy_task``. A path to a ``.jsonl`` file is a user's own set, graded like MATH.

GPQA Diamond (Rein et al., arXiv 2311.12022) asks that its questions never appear in plain text online:
options are shuffled with a per-question seed and records keep only a hash in printable fields
(``redact``). ``gpqa-diamond-openai`` is the same set as the paper's harness asks it (s1's lm-evaluation-harness
task ``gpqa_diamond_openai``): its prompt (no instruction) and its shuffle (see ``gpqa_openai_problems``).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import paths

LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class Benchmark:
    name: str
    loader: Callable[[int | None, int], list[dict]]   # (limit, seed) -> problems
    grader: str                                      # key of grading.GRADERS
    files: tuple[str, ...] = ()                      # under paths.BENCHMARK_DIR
    hub: tuple[str, str, str | None] = ("", "", None)  # (dataset id, split, config) for `tts-prune data`
    secret: bool = False                             # never print problem text (GPQA)


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a (optionally gzipped) JSONL file; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"benchmark file {path} does not exist; run `make data` (or `tts-prune data`)")
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(f"{path}:{number}: not UTF-8 ({error}); re-save the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: bad JSON ({error.msg}); each line must be one JSON object") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: a JSON {type(row).__name__}, expected an object with fields")
            rows.append(row)
    return rows


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


def load_gsm8k(limit, seed):
    rows = read_jsonl(_local("gsm8k_test.jsonl"))
    return _take([{"id": f"gsm8k-{i}", "problem": r["question"], "answer": r["answer"].split("####")[-1].strip()}
                  for i, r in enumerate(rows)], limit)


def question_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def gpqa_problem(row: dict) -> dict:
    """Question with shuffled options; the shuffle seed is the question's own hash, so it is fixed."""
    question = row["Question"].strip()
    options = [row["Correct Answer"]] + [row[f"Incorrect Answer {k}"] for k in (1, 2, 3)]
    options = [str(o).strip() for o in options]
    order = list(range(4))
    random.Random(int(question_hash(question), 16)).shuffle(order)
    choices = [options[k] for k in order]
    gold = LETTERS[order.index(0)]
    text = question + "\n\n" + "\n".join(f"({LETTERS[k]}) {c}" for k, c in enumerate(choices))
    text += "\n\nAnswer with the letter of the correct option."
    return {"id": f"gpqa-{question_hash(question)}", "problem": text, "answer": gold, "choices": choices,
            "question": question}


def load_gpqa(limit, seed):
    return _take([gpqa_problem(r) for r in read_jsonl(_local("gpqa_diamond.jsonl.gz"))], limit)


def gpqa_openai_problems(rows: list[dict], seed: int = 0) -> list[dict]:
    """GPQA as the harness's ``gpqa_diamond_openai`` task builds it (``tasks/gpqa/openai/utils.py``).

    Prompt: ``{Question}\n\nA) {choice1}\nB) ...\nD) {choice4}`` with no instruction (their ``QUERY_TEMPLATE``,
    ``judge_prompts.json``). Order: per row, in file order, ``[Incorrect 1, Incorrect 2, Incorrect 3, Correct]``
    shuffled by Python's ``random`` after ``random.seed(seed)`` (lm-eval seeds it with ``--seed``, default 0,
    which their script keeps). Whether this reproduces their letters depends on what their run did between
    that seed and ``process_docs`` (lm-eval builds the vLLM model first; an engine in the same process that
    reseeds ``random`` changes every shuffle), on ``datasets``' map cache (a cached ``process_docs`` result is
    reused whatever the seed) and on the row order of the file, which must be the hub's ``Idavidrein/gpqa``
    ``gpqa_diamond`` train order. None of these can be checked offline: this is their procedure, not
    necessarily their letters. Texts are used unstripped, as theirs.
    """
    from .judge import judge_prompts

    template = judge_prompts()["gpqa_prompt"]["template"]
    rng = random.Random(seed)
    problems = []
    for row in rows:
        choices = [row["Incorrect Answer 1"], row["Incorrect Answer 2"], row["Incorrect Answer 3"], row["Correct Answer"]]
        rng.shuffle(choices)
        text = template.format(Question=row["Question"], **{f"choice{k + 1}": c for k, c in enumerate(choices)})
        problems.append({"id": f"gpqa-{question_hash(row['Question'].strip())}", "problem": text,
                         "answer": LETTERS[choices.index(row["Correct Answer"])], "choices": choices,
                         "question": row["Question"]})
    return problems


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


def load_toy(limit, seed):
    from ..models.toy_task import make_problems  # lazy: the toy task belongs to the toy reasoner

    return [{"id": p["id"], "problem": p["problem"], "answer": str(p["answer"])}
            for p in make_problems(limit if limit is not None else 200, seed=seed, split="test")]


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
                       ("openai/gsm8k", "test", "main")),
    "chain_sum": Benchmark("chain_sum", _gym("chain_sum"), "numeric"),
    "basic_arithmetic": Benchmark("basic_arithmetic", _gym("basic_arithmetic"), "math"),
    "gsm_symbolic": Benchmark("gsm_symbolic", _gym("gsm_symbolic"), "numeric"),
    "toy-reasoning": Benchmark("toy-reasoning", load_toy, "numeric"),
}


def resolve(benchmark: str) -> tuple[Benchmark, Callable]:
    """(Benchmark, loader) for a registered name or a path to a user's .jsonl file."""
    if benchmark in BENCHMARKS:
        spec = BENCHMARKS[benchmark]
        return spec, spec.loader
    if benchmark.partition("@")[0] in BENCHMARKS:  # "<benchmark>@train" / "@validation": disjoint from the test set
        from .splits import split_spec

        loader, grader = split_spec(benchmark)
        return Benchmark(benchmark, loader, grader), loader
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
                shutil.copyfile(source / filename, dest)
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
