"""A tiny but complete Qwen2 GGUF (byte-level BPE tokenizer, chat template, float32 tensors), for tests."""
from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
from transformers.convert_slow_tokenizer import bytes_to_unicode

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def write_tiny_qwen2_gguf(path: Path, seed: int = 0) -> Path:
    """Write a 2-block Qwen2 GGUF with the tensor names llama.cpp's converter uses."""
    rng = np.random.default_rng(seed)
    tokens = list(bytes_to_unicode().values()) + ["Ġt", "he", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    vocab, hidden, inter, blocks, heads, kv_heads = len(tokens), 64, 128, 2, 4, 2
    kv_dim = hidden // heads * kv_heads
    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_block_count(blocks)
    writer.add_context_length(256)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(inter)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types([1] * (vocab - 3) + [3, 3, 3])  # 3: control tokens
    writer.add_token_merges(["Ġ t", "h e"])
    writer.add_bos_token_id(vocab - 3)
    writer.add_pad_token_id(vocab - 3)
    writer.add_eos_token_id(vocab - 1)
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)

    def weight(*shape: int) -> np.ndarray:  # numpy (out, in); GGUF stores the dimensions reversed
        return (rng.standard_normal(shape) * 0.1).astype(np.float32)

    writer.add_tensor("token_embd.weight", weight(vocab, hidden))
    writer.add_tensor("output_norm.weight", np.ones(hidden, np.float32))
    writer.add_tensor("output.weight", weight(vocab, hidden))
    for block in range(blocks):
        prefix = f"blk.{block}."
        writer.add_tensor(prefix + "attn_norm.weight", np.ones(hidden, np.float32))
        writer.add_tensor(prefix + "ffn_norm.weight", np.ones(hidden, np.float32))
        for name, rows in (("attn_q", hidden), ("attn_k", kv_dim), ("attn_v", kv_dim)):
            writer.add_tensor(prefix + name + ".weight", weight(rows, hidden))
            writer.add_tensor(prefix + name + ".bias", weight(rows))
        writer.add_tensor(prefix + "attn_output.weight", weight(hidden, hidden))
        writer.add_tensor(prefix + "ffn_gate.weight", weight(inter, hidden))
        writer.add_tensor(prefix + "ffn_up.weight", weight(inter, hidden))
        writer.add_tensor(prefix + "ffn_down.weight", weight(hidden, inter))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
