"""A model's shapes from its ``config.json`` alone, for ``tts-prune plan`` and the GPU dress rehearsal.

Nothing here loads weights: the config is read (shipped copy under ``data/model_configs/``, a local model
directory, or the hub through ``transformers.AutoConfig``) and the model is instantiated on PyTorch's
``meta`` device, which allocates no storage, so parameter counts and every prunable linear's shape come
from the same generic layer walker the pruning code uses (no per-family formulas).
"""
from __future__ import annotations

import functools
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from .. import paths

DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


def shipped_config_dir(model: str) -> Path:
    """Where the kit ships ``model``'s config: ``data/model_configs/<hub id with / -> -->``."""
    return paths.MODEL_CONFIG_DIR / model.replace("/", "--")


def load_config(model: str):
    """``model``'s transformers config: the shipped copy, else a local directory, else the hub."""
    from transformers import AutoConfig

    shipped = shipped_config_dir(model)
    if (shipped / "config.json").is_file():
        return AutoConfig.from_pretrained(shipped)
    local = Path(model)
    if (local / "config.json").is_file():
        return AutoConfig.from_pretrained(local)
    if "/" not in model:  # an embedded name (hub ids have an owner); imported only then: it is slow to import
        from ..models.embedded import EMBEDDED

        if model in EMBEDDED:  # read the built model's config; never build (the toy trains for minutes) to plan
            built = paths.MODELS_DIR / "embedded" / model
            if not (built / "config.json").is_file():
                raise ValueError(f"embedded model {model!r} is not built yet, so its config.json is not in {built}; "
                                 f"build it first (`make model` for the toy reasoner, `make qwen` for the Qwen2.5, "
                                 f"or load it once with tts_prune.load_model({model!r}))")
            return AutoConfig.from_pretrained(built)
    try:
        return AutoConfig.from_pretrained(model)
    except OSError as error:
        raise ValueError(f"no config.json for model {model!r}: not shipped under {paths.MODEL_CONFIG_DIR}, not a "
                         f"local directory with a config.json, and the hub did not answer ({error}). Put its "
                         f"config.json in {shipped}/ or pass a local model directory; with HF_HUB_OFFLINE=1 set, "
                         "hub ids need HF_HUB_OFFLINE=0") from None


@dataclass(frozen=True)
class ModelShape:
    """What the plan needs to know about a model, all derived from its config.

    ``linears`` lists the (out_features, in_features) of every prunable linear of ONE decoder block (they are
    the same for every block of the models this kit walks); ``params`` counts every parameter, embeddings
    and ``lm_head`` included (a tied head counted once).
    """

    name: str
    params: int
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    max_positions: int
    linears: tuple[tuple[str, int, int], ...]
    block_params: int = 0  # every parameter of one decoder block (linears, biases, norms)

    @property
    def prunable_params(self) -> int:
        return self.layers * sum(o * i for _, o, i in self.linears)

    def without_blocks(self, n: int) -> ModelShape:
        """The model ShortGPT leaves after removing ``n`` decoder blocks: fewer layers, so fewer weights and
        fewer KV bytes per token (embeddings, head and final norm stay)."""
        if not 0 <= n < self.layers or not self.block_params:
            raise ValueError(f"without_blocks({n}) on {self.name or 'a model'} of {self.layers} blocks: allowed 0 <= n "
                             f"< {self.layers} on a shape that knows its block_params (built by shape_from_config); "
                             "lower shortgpt_layers")
        name = f"{self.name} -{n} block{'s' if n > 1 else ''}" if n else self.name
        return dataclasses.replace(self, name=name, layers=self.layers - n, params=self.params - n * self.block_params)

    def weight_bytes(self, dtype: str) -> int:
        return self.params * DTYPE_BYTES[dtype]

    def kv_bytes_per_token(self, dtype: str) -> int:
        """Key and value of every layer for one token: layers x 2 x kv_heads x head_dim x dtype bytes."""
        return self.layers * 2 * self.kv_heads * self.head_dim * DTYPE_BYTES[dtype]

    def flops_per_token(self, context: float) -> float:
        """Forward FLOPs of one token at ``context`` positions: 2 x params (matmuls, embeddings' lookup is
        free but lm_head is not; the rounding is below 1%) plus attention's QK^T and AV, 4 x layers x heads x
        head_dim x context (Kaplan et al., arXiv 2001.08361, Table 1, with GQA's query heads)."""
        return 2.0 * self.params + 4.0 * self.layers * self.heads * self.head_dim * context


@functools.lru_cache(maxsize=16)
def model_shape(model: str) -> ModelShape:
    """The :class:`ModelShape` of ``model`` (a hub id, local directory or embedded name), from its config."""
    return shape_from_config(load_config(model), model)


def shape_from_config(config, name: str = "") -> ModelShape:
    """The :class:`ModelShape` of a transformers config (e.g. a shrunk copy of a shipped one)."""
    import torch
    from transformers import AutoModelForCausalLM

    from ..models.layers import decoder_layers, prunable_linears, weight_matrix

    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    with torch.device("meta"):  # shapes without storage: an 8B model costs no memory here
        net = AutoModelForCausalLM.from_config(config)
    seen, params = set(), 0
    for p in net.parameters():  # tied weights are one parameter object
        if id(p) not in seen:
            seen.add(id(p))
            params += p.numel()
    blocks = decoder_layers(net)
    linears = tuple((n, *weight_matrix(m).shape) for n, m in prunable_linears(blocks[0]).items())
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    return ModelShape(name=name, params=params, layers=len(blocks), hidden=text.hidden_size,
                      intermediate=getattr(text, "intermediate_size", 4 * text.hidden_size), heads=heads,
                      kv_heads=getattr(text, "num_key_value_heads", None) or heads, head_dim=head_dim,
                      vocab=text.vocab_size, max_positions=getattr(text, "max_position_embeddings", 0) or 0,
                      linears=tuple((n, int(o), int(i)) for n, o, i in linears),
                      block_params=sum(p.numel() for p in blocks[0].parameters()))
