"""Tiny character-level chat models for the evaluator tests (the toy reasoner's tokenizer, random weights)."""
import torch


def toy_pair(seed: int = 0, logit_scale: float = 1.0):
    """(model, tokenizer): a 2-layer Llama over the toy tokenizer's 101 tokens.

    ``logit_scale`` sharpens (>1, clear greedy argmaxes) or flattens (<1) the output distribution;
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    from tts_prune.models.toy import build_tokenizer

    tokenizer = build_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(logit_scale)
    return model, tokenizer
