"""``tts-prune study``: run a study grid of notebooks and print where the index is."""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from .. import paths
from ..models.runtime import AUTO, resolve_threads
from .executors import EXECUTORS
from .grid import expand, load_study
from .execute import CellFailed
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
    parser.add_argument("--executor", choices=sorted(EXECUTORS), default="local",
                        help="local: one cell per device of this machine, side by side (default); ray: cells as Ray "
                             "tasks, as many at once as the cluster holds")
    parser.add_argument("--devices", default=None,
                        help="local executor: GPU ids cells may use, e.g. 0,1,2,3 (one cell per device, each seeing "
                             "only its own; a tensor_parallel_size k cell takes k); default: every visible GPU, "
                             "or one CPU slot without a GPU")
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join (auto, HOST:6379 or ray://HOST:10001); default: start one on this machine")
    parser.add_argument("--cpus-per-cell", type=float, default=1, help="CPUs each cell asks of Ray (default 1)")
    parser.add_argument("--gpus-per-cell", type=float, default=None,
                        help="GPUs each cell asks of Ray (default: from the study: tensor_parallel_size, else 1 for "
                             "a cell on GPUs (backend vllm, a GPU dtype, or a cluster with GPUs), else 0; 05-report "
                             "asks none)")


def run(args: argparse.Namespace) -> int:
    study = load_study(args.study, models=args.model)
    if getattr(args, "threads", None) is not None:  # `--threads` replaces the study's `params.threads` too
        threads = AUTO if str(args.threads).strip().lower() == AUTO else resolve_threads(args.threads)
        study = dataclasses.replace(study, params={**study.params, "threads": threads})
    out = Path(args.out).absolute() if args.out else None  # Ray workers do not share this working directory
    dirs = {} if out is None else {"reports": out / "reports", "results": out / "results",
                                   "figures": out / "figures", "models_out": out / "models"}
    if args.list:
        for cell in expand(study, **dirs):
            print(f"{cell.notebook:16s} {cell.label:70s} {cell.output}")
        return 0
    if args.executor != "ray" and (args.address or args.gpus_per_cell is not None or args.cpus_per_cell != 1):
        print("tts-prune study: --address, --cpus-per-cell and --gpus-per-cell apply to --executor ray only; "
              "add --executor ray or drop them", file=sys.stderr)
        return 2
    if args.executor == "ray" and args.devices is not None:
        print("tts-prune study: --devices applies to --executor local only (Ray gives each cell its GPUs); "
              "drop it or use --gpus-per-cell", file=sys.stderr)
        return 2
    options = ({"address": args.address, "cpus_per_cell": args.cpus_per_cell, "gpus_per_cell": args.gpus_per_cell}
               if args.executor == "ray" else {"devices": args.devices})
    notebooks = Path(args.notebooks).absolute() if args.notebooks else None
    start = time.perf_counter()
    try:
        cells = run_study(study, notebooks=notebooks, show_progress=not args.no_progress, force=args.force,
                          executor=args.executor, executor_options=options, **dirs)
    except CellFailed as error:
        print(f"tts-prune study: a notebook failed; finished cells stay done and a rerun resumes:\n{error}",
              file=sys.stderr)
        return 1
    print(f"study {study.name}: {len(cells)} notebooks in {time.perf_counter() - start:.0f} s; "
          f"index: {Path(dirs.get('reports', paths.REPORTS_DIR)) / 'index.html'}")
    return 0
