"""The ``tts-prune prune`` command, built from ``PruneConfig``'s fields and the methods' and allocations'
declarations: one option per field, with its default, its type, its allowed values and its help. A method
registered in ``PRUNERS`` appears in ``--method`` without any edit here."""
from __future__ import annotations

import argparse
import dataclasses

from .config import PruneConfig, declarations


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(","))


def _kind(annotation: str):
    # the field's annotation (a string under `from __future__ import annotations`) -> argparse type
    for name, kind in (("tuple", _floats), ("float", float), ("int", int)):
        if annotation.startswith(name):
            return kind
    return str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..models.embedded import DEFAULT_MODEL

    parser.add_argument("--model", default=DEFAULT_MODEL, help="embedded name, local dir, .gguf file or hub id")
    declared = declarations()
    for f in dataclasses.fields(PruneConfig):
        param = declared[f.name][0]
        default = None if f.default is dataclasses.MISSING else f.default
        choices = param.allowed_values()
        if choices is not None and default == "auto" and "auto" not in choices:
            choices = ["auto", *choices]  # resolved per method by PruneConfig
        owners = [owner[1] for owner in declared[f.name][1:] if owner[0] != "core"]
        note = f" [{', '.join(owners)}]" if owners else ""
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=_kind(str(f.type)), default=default, choices=choices,
                            required=f.default is dataclasses.MISSING,
                            help=f"{param.help}{note} (default: {'the method' + chr(39) + 's' if default is None else default})")
    parser.add_argument("--device-map", default=None, help="'auto' to spread a large model over devices")
    parser.add_argument("--out", required=True, help="output directory for the pruned model")


def config_from(args: argparse.Namespace) -> PruneConfig:
    """The ``PruneConfig`` of parsed ``prune`` arguments."""
    return PruneConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(PruneConfig)})


def run(args: argparse.Namespace) -> int:
    from ..models.loading import load_model
    from .driver import prune
    from .save import save_pruned

    config = config_from(args)
    model, tokenizer = load_model(args.model, dtype=args.dtype, device_map=args.device_map)
    result = prune(model, tokenizer, config)
    out = save_pruned(model, tokenizer, result, args.out, source=args.model)
    print(result.layers.to_string(index=False))
    print(f"global sparsity {result.global_sparsity:.4f} (target {result.target_global_sparsity:.4f}) in "
          f"{result.timings['total_s']:.1f} s; saved to {out}")
    return 0
