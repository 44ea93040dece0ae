"""``tts-prune study``: run a study grid of notebooks and print where the index is."""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from .. import paths
from ..models.runtime import AUTO, resolve_threads
from .grid import expand, load_study
from .runner import run_study


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study", default=str(paths.ROOT / "studies" / "default.yaml"), help="study YAML file")
    parser.add_argument("--model", action="append", default=None, help="replace the study's models (repeatable)")
    parser.add_argument("--out", default=None,
                        help="put reports/, results/, figures/ and models/ under this folder instead of the project's")
    parser.add_argument("--notebooks", default=None, help="folder of the input notebooks (default: notebooks/)")
    parser.add_argument("--force", action="store_true", help="re-run cells that are already done")
    parser.add_argument("--list", action="store_true", help="print the cells and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import papermill

    study = load_study(args.study, models=args.model)
    if getattr(args, "threads", None) is not None:  # `--threads` replaces the study's `params.threads` too
        threads = AUTO if str(args.threads).strip().lower() == AUTO else resolve_threads(args.threads)
        study = dataclasses.replace(study, params={**study.params, "threads": threads})
    out = Path(args.out) if args.out else None
    dirs = {} if out is None else {"reports": out / "reports", "results": out / "results",
                                   "figures": out / "figures", "models_out": out / "models"}
    if args.list:
        for cell in expand(study, **dirs):
            print(f"{cell.notebook:16s} {cell.label:70s} {cell.output}")
        return 0
    start = time.perf_counter()
    try:
        cells = run_study(study, notebooks=args.notebooks, show_progress=not args.no_progress, force=args.force, **dirs)
    except papermill.PapermillExecutionError as error:
        print(f"tts-prune study: a notebook failed, the run stops here:\n{error}", file=sys.stderr)
        return 1
    print(f"study {study.name}: {len(cells)} notebooks in {time.perf_counter() - start:.0f} s; "
          f"index: {Path(dirs.get('reports', paths.REPORTS_DIR)) / 'index.html'}")
    return 0
