"""Run as a script (a fresh process, so its peak RSS is its own): ``token_kl`` on a 2-block random-init Qwen2
with Qwen's 152,064-token vocabulary and a 64-wide hidden state, so full-vocabulary logits are everything and
the model is nothing. Prints the peak RSS (MB, ``ru_maxrss``) after each run as JSON: the high-water mark
only rises, so a later run that needs more memory than the earlier ones shows as growth."""
from __future__ import annotations

import json
import resource
import sys

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from tts_prune.pruning.divergence import token_kl

VOCAB = 152064
PROMPT = 16


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main(runs: list[tuple[int, int, int]]) -> dict:
    torch.set_num_threads(1)
    config = Qwen2Config(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
                         tie_word_embeddings=False)
    torch.manual_seed(0)
    dense = Qwen2ForCausalLM(config).eval()
    torch.manual_seed(1)
    pruned = Qwen2ForCausalLM(config).eval()
    generator = torch.Generator().manual_seed(0)

    def traces(count: int, length: int):
        return [(torch.randint(0, VOCAB, (PROMPT,), generator=generator).tolist(),
                 torch.randint(0, VOCAB, (length - PROMPT,), generator=generator).tolist()) for _ in range(count)]

    peaks = {}
    for count, length, slice_size in runs:
        table = token_kl(dense, pruned, traces(count, length), slice_size=slice_size)
        assert len(table) == count * (length - PROMPT) and table["kl"].gt(0).all()
        peaks[f"{count}x{length}/{slice_size}"] = peak_mb()
    return peaks


if __name__ == "__main__":
    print(json.dumps(main([tuple(run) for run in json.loads(sys.argv[1])])))
