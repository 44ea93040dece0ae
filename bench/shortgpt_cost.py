"""ShortGPT's measured per-token saving against its removed share, with the kit's cost probe (transformers, CPU).

Usage: ``python bench/shortgpt_cost.py [--model smollm2-135m-instruct] [--remove 0 6 10 15] [--batch 1 8]
[--threads 1]``. For each k, k of the model's L decoder blocks are removed (evenly spaced in the middle: the
per-token cost does not depend on which ones ShortGPT's Block Influence picks) and ``tts_prune.tts.cost.measure_cost``
times prefill and decode on the transformers backend. Printed per k and batch: decode seconds per step, its ratio
to the dense model's, (L - k) / L, and the analytic FLOPs ratio (which keeps the LM head: on SmolLM2 it is a fifth
of the linear work). The dense model is measured first and last; the spread of the two is the drift under load.
"""
from __future__ import annotations

import argparse
import copy
import json

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--remove", nargs="+", type=int, default=[6, 10, 15])
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from transformers import AutoModelForCausalLM

    from tts_prune.models.embedded import embedded_model_dir
    from tts_prune.models.layers import decoder_layers
    from tts_prune.pruning.shortgpt import remove_layers
    from tts_prune.tts.backends import TransformersBackend
    from tts_prune.tts.cost import CostProbe, measure_cost

    dense = AutoModelForCausalLM.from_pretrained(embedded_model_dir(args.model), dtype=torch.float32).eval()
    blocks = len(decoder_layers(dense))
    probe = CostProbe(batch_sizes=tuple(args.batch), prompt_tokens=args.prompt_tokens,
                      decode_tokens=args.decode_tokens, warmup=1, repeats=args.repeats)

    def cut(k: int):
        model = copy.deepcopy(dense)
        start = (blocks - k) // 2  # k consecutive middle blocks
        return remove_layers(model, list(range(start, start + k))) if k else model

    results = []
    for k in [0, *args.remove, 0]:
        model = cut(k)
        record = measure_cost(TransformersBackend(model, None), model, probe=probe)
        assert record["flops"]["blocks"] == blocks - k, (k, record["flops"]["blocks"])
        results.append({"removed": k, "blocks": blocks - k, "record": record})
        del model
    first, last = results[0]["record"], results[-1]["record"]
    print(f"{args.model}: {blocks} blocks, {args.threads} thread(s); dense measured first and last")
    print("removed  batch  decode s/step  ratio  (L-k)/L  FLOPs ratio  prefill s/token ratio")
    for result in results:
        record = result["record"]
        for row, base, again in zip(record["measurements"], first["measurements"], last["measurements"]):
            dense_step = (base["decode_step_s"] + again["decode_step_s"]) / 2
            dense_prefill = (base["prefill_s_per_token"] + again["prefill_s_per_token"]) / 2
            flops = record["flops_per_token_at_probe_context"] / first["flops_per_token_at_probe_context"]
            print(f"{result['removed']:7d}  {row['batch_size']:5d}  {row['decode_step_s']:13.4f}  "
                  f"{row['decode_step_s'] / dense_step:5.3f}  {result['blocks'] / blocks:7.3f}  {flops:11.3f}  "
                  f"{row['prefill_s_per_token'] / dense_prefill:6.3f}")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
