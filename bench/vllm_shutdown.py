"""``VLLMEngine.close`` against real vLLM: the engine's processes end, its memory comes back, a next engine starts.

Usage: ``.venv-vllm/bin/python bench/vllm_shutdown.py [--model smollm2-135m-instruct] [--rounds 2] [--memory 0.1]``
(on a GPU machine: ``.venv/bin/python`` with the ``gpu`` extra). Each round starts a ``VLLMEngine`` in this process,
generates 8 greedy tokens, closes it, and prints the start and close times, vLLM's child processes while open and
after close (``multiprocessing.active_children``, which also reaps the ones that ended), and on CUDA the free
device memory before the start, while open and after close. Every round must give the same tokens: a closed
engine leaves nothing behind that changes the next one.
"""
from __future__ import annotations

import argparse
import multiprocessing
import time


def _free_gib() -> str:
    import torch

    if not torch.cuda.is_available():
        return "n/a (no CUDA)"
    free, total = torch.cuda.mem_get_info()
    return f"{free / 2**30:.1f} of {total / 2**30:.1f} GiB"


def _children() -> list[str]:
    return sorted(p.name for p in multiprocessing.active_children())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="embedded name or a local model directory")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--memory", type=float, default=0.1, help="gpu_memory_utilization (on CPU: share of RAM)")
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args()

    from tts_prune.models.embedded import EMBEDDED, embedded_model_dir
    from tts_prune.tts.vllm_backend import Request, VLLMEngine

    path = str(embedded_model_dir(args.model) if args.model in EMBEDDED else args.model)
    request = Request(max_tokens=8, temperature=0.0, top_p=1.0, top_k=0, seed=0, stop_token_ids=())
    outputs = []
    for round_ in range(1, args.rounds + 1):
        before = _free_gib()
        began = time.perf_counter()
        engine = VLLMEngine(path, dtype=args.dtype, max_model_len=512, gpu_memory_utilization=args.memory,
                            enforce_eager=True)
        started = time.perf_counter() - began
        open_children, open_free = _children(), _free_gib()
        outputs.append(engine.generate([[1, 2, 3, 4]], [request]))
        began = time.perf_counter()
        engine.close()
        closed = time.perf_counter() - began
        print(f"round {round_}: start {started:.1f} s, close {closed:.1f} s; free device memory before {before}, "
              f"open {open_free}, closed {_free_gib()}; child processes open {open_children}, closed {_children()}",
              flush=True)
    print("same greedy tokens in every round:", all(o == outputs[0] for o in outputs), outputs[0])


if __name__ == "__main__":
    main()
