"""Shared fixtures: tiny random-init models of several families, built offline in seconds."""
from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# `make test` runs the suite on several pytest-xdist workers (one per core): each worker then gets its share of the
# cores, and so do the processes it starts (notebook kernels, subprocess probes), so no two OpenMP pools fight
# over one core (a pool that spins on a shared core runs several times slower).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_THREADS = max(1, min(2, (os.cpu_count() or 1) // _WORKERS))
if _WORKERS > 1:
    os.environ["OMP_NUM_THREADS"] = str(_THREADS)
torch.set_num_threads(max(1, min(_THREADS, torch.get_num_threads())))

# Small but complete configs: every family keeps its own block structure (fused qkv for Phi3,
# Conv1D for GPT-2, sandwich norms for Gemma2) at a size that builds in milliseconds.
_COMMON = dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)

FAMILIES = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", _COMMON),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", _COMMON),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", dict(_COMMON, head_dim=16)),
    "mistral": ("MistralConfig", "MistralForCausalLM", _COMMON),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", dict(_COMMON, head_dim=16)),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", dict(_COMMON, pad_token_id=0)),
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", dict(vocab_size=128, n_embd=64, n_layer=3, n_head=4, n_positions=256)),
}


def tiny_model(family: str, seed: int = 0):
    import transformers

    config_name, model_name, kwargs = FAMILIES[family]
    config = getattr(transformers, config_name)(**kwargs)
    torch.manual_seed(seed)
    model = getattr(transformers, model_name)(config)
    return model.eval()


@pytest.fixture(params=sorted(FAMILIES))
def family_model(request):
    return request.param, tiny_model(request.param)



def pytest_xdist_make_scheduler(config, log):
    """``make test`` (pytest-xdist): each test file runs on one worker, as ``--dist loadfile`` (its module fixtures
    are built once), except that the files sharing the smoke-study run (``smoke_run``) all go to one worker, which
    makes the run once; the other workers take the rest meanwhile instead of waiting for it."""
    from pathlib import Path

    from xdist.scheduler import LoadScopeScheduling

    root = Path(str(config.rootpath))
    smoke = {p.relative_to(root).as_posix() for p in Path(__file__).parent.rglob("test_*.py")
             if "smoke_run" in p.read_text(encoding="utf-8")}

    class FileScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "smoke-study" if path in smoke else path

    return FileScheduling(config, log)


@pytest.fixture
def fake_vllm(monkeypatch):
    """``import vllm`` gets tests/_fake_vllm/vllm for this test; the real package (if any) is back afterwards."""
    import sys
    from pathlib import Path

    for name in [n for n in sys.modules if n == "vllm" or n.startswith("vllm.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "_fake_vllm"))
    import vllm

    assert vllm.__version__.endswith("+fake")
    yield vllm
    for name in [n for n in sys.modules if n == "vllm" or n.startswith("vllm.")]:
        del sys.modules[name]
