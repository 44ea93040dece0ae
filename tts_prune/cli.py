"""The ``tts-prune`` command line: one sub-command per registered entry.

Each sub-command lives in the module that owns its work and provides ``add_arguments(parser)`` and
``run(args) -> int``; this file only dispatches, so adding a command is one registry line.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .models.runtime import use_threads

COMMANDS = {
    "info": ("tts_prune.models.info", "load a model and print its decoder layers and parameter counts"),
    "prune": ("tts_prune.pruning.cli", "prune a model (magnitude, wanda, sparsegpt, shortgpt) and save it with its recipe"),
    "eval": ("tts_prune.tts.eval_cli", "evaluate a model on a benchmark at several thinking budgets (budget forcing)"),
    "data": ("tts_prune.tts.benchmarks", "fill data/benchmarks/ from ../shared/data/benchmarks or the hub"),
    "train-toy": ("tts_prune.models.embedded", "train (once, cached) the toy-reasoner: a small Qwen3 model with real test-time scaling"),
    "plan": ("tts_prune.study.plan_cli", "what a study costs on a GPU (memory of every step, tokens, GPU-hours) before the spend"),
    "power": ("tts_prune.report.reviewer", "problems x seeds a paired pruned-vs-dense test needs to detect a difference d, from a results store"),
    "study": ("tts_prune.study.cli", "run a study grid of notebooks with papermill, render HTML reports and reports/index.html"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tts-prune", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command)
        command.add_argument("--threads", default=None, help="torch CPU threads: 'auto' (default: every core this "
                             "process may use) or a number (1 when other jobs share the cores)")
        command.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    previous = torch.get_num_threads()  # restored, for callers that run commands in their own process
    try:
        use_threads(args.threads)
        return int(args._run(args) or 0)
    except (ValueError, FileNotFoundError) as error:
        # Errors of the kit explain themselves; a traceback would bury the message.
        print(f"tts-prune {args.command}: error: {error}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(previous)


if __name__ == "__main__":
    sys.exit(main())
