import json
import os

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.conftest import tiny_model
from tts_prune import DEFAULT_MODEL, ModelLoadError, decoder_layers, load_model, model_fingerprint
from tts_prune.models.embedded import _CHECKSUM_FILE, embedded_model_dir


@pytest.fixture(scope="module")
def embedded():
    return load_model(DEFAULT_MODEL)


def test_embedded_default_loads_offline_as_plain_llama(embedded):
    model, tokenizer = embedded
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert type(model).__name__ == "LlamaForCausalLM"
    assert len(decoder_layers(model)) == model.config.num_hidden_layers == 30
    assert model.dtype == torch.float32
    assert getattr(model.config, "quantization_config", None) is None
    assert tokenizer.chat_template
    # SmolLM2-135M has ~135M parameters (tied embeddings are counted once)
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6


def test_embedded_cache_is_a_standard_checkpoint_with_checksums(embedded):
    model, _ = embedded
    directory = embedded_model_dir(DEFAULT_MODEL)
    config = json.loads((directory / "config.json").read_text())
    assert "quantization_config" not in config
    sums = json.loads((directory / _CHECKSUM_FILE).read_text())
    assert sums and all(name.endswith(".safetensors") for name in sums)
    # plain transformers reads it back with identical logits
    reloaded = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reloaded(ids).logits)


def test_embedded_model_generates_text(embedded):
    model, tokenizer = embedded
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    text = tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in text


def test_corrupt_embedded_cache_is_rebuilt(tmp_path, monkeypatch):
    from tts_prune import paths
    from tts_prune.models import embedded as models

    monkeypatch.setattr(paths, "MODELS_DIR", tmp_path)
    calls = []

    def build(target):
        calls.append(target)
        tiny_model("llama").save_pretrained(target)

    monkeypatch.setitem(models.EMBEDDED, "tiny", models.EmbeddedModel("tiny", "test", build))
    first = embedded_model_dir("tiny")
    assert embedded_model_dir("tiny") == first and len(calls) == 1  # cached
    weights = next(first.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-8] + b"corrupt!")
    embedded_model_dir("tiny")
    assert len(calls) == 2  # checksum mismatch: rebuilt


def test_local_directory_round_trip(tmp_path):
    model = tiny_model("qwen3")
    model.save_pretrained(tmp_path / "m")
    AutoTokenizer.from_pretrained(embedded_model_dir(DEFAULT_MODEL)).save_pretrained(tmp_path / "m")
    loaded, tokenizer = load_model(tmp_path / "m", device="cpu")
    assert type(loaded).__name__ == "Qwen3ForCausalLM"
    assert model_fingerprint(loaded) == model_fingerprint(model)
    assert tokenizer.pad_token is not None


def test_fingerprint_sees_pruning():
    model = tiny_model("llama")
    before = model_fingerprint(model)
    with torch.no_grad():
        decoder_layers(model)[0].mlp.down_proj.weight[0, :5] = 0
    assert model_fingerprint(model) != before


@pytest.mark.parametrize("reference, message", [
    ("no-such-embedded-model", "neither an embedded model"),
    ("/nonexistent/dir/model.gguf", "does not exist"),
    ("./missing/dir", "neither an embedded model"),
])
def test_bad_references_are_clear_errors(reference, message):
    with pytest.raises(ModelLoadError, match=message):
        load_model(reference)


def test_directory_without_config_is_rejected(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(tmp_path)


def test_corrupt_gguf_is_rejected(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(ModelLoadError, match="broken.gguf"):
        load_model(bad)


def test_corrupt_safetensors_is_rejected(tmp_path):
    tiny_model("llama").save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(embedded_model_dir(DEFAULT_MODEL)).save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match="could not load model"):
        load_model(tmp_path)


def test_bad_dtype_and_device_name_the_allowed_values():
    with pytest.raises(ModelLoadError, match="dtype 'float8'"):
        load_model(DEFAULT_MODEL, dtype="float8")
    with pytest.raises(ModelLoadError, match="device 'tpu7'"):
        load_model(DEFAULT_MODEL, device="tpu7")
