"""ShortGPT as the authors of arXiv 2604.25098 ran it: a number of blocks (``shortgpt_layers``), Block Influence
held against a transcription of their ``block_influence`` / ``prune_shortgpt``, and their calibration text
(PG19 validation paragraphs, ``shortgpt_sampled_text``) with its named offline stand-in."""
import copy
import json

import pytest
import torch

from tests.conftest import tiny_model
from tts_prune import PruneConfig, block_influence, prune, save_pruned
from tts_prune.models.layers import decoder_layers
from tts_prune.pruning import pg19, windows
from tts_prune.pruning.shortgpt import removal_count


class _CharTokenizer:
    """One token per character (ids < 128): enough for windows and samples."""

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": [ord(c) % 128 for c in text]}


def _theirs_bi(model, samples):
    """Their Block Influence (lib/prune.py, --batch_size 1), transcribed in float64: forward hooks keep the
    *input* of every block; block i's score compares input i with input i + 1 over the sample's tokens
    (diagonal of the similarity matrix, NaN -> 0.5), mean per sample, then mean over samples; the last block
    gets no score."""
    layers = decoder_layers(model)
    per_sample = []
    for ids in samples:
        seen = []
        handles = [b.register_forward_hook(lambda m, a, k, o: seen.append(k.get("hidden_states", a[0] if a else None)),
                                           with_kwargs=True) for b in layers]
        with torch.no_grad():
            model(input_ids=ids.unsqueeze(0))
        for h in handles:
            h.remove()
        scores = []
        for i in range(len(layers) - 1):
            x, y = seen[i].double().reshape(-1, seen[i].shape[-1]), seen[i + 1].double().reshape(-1, seen[i].shape[-1])
            sim = ((x @ y.T) / (x.norm(dim=-1, keepdim=True) * y.norm(dim=-1, keepdim=True))).diagonal().nan_to_num(nan=0.5)
            scores.append(float((1 - sim).mean()))
        per_sample.append(scores)
    return [sum(s[i] for s in per_sample) / len(per_sample) for i in range(len(layers) - 1)]


def _samples():
    gen = torch.Generator().manual_seed(3)
    return [torch.randint(0, 128, (n,), generator=gen) for n in (5, 17, 11, 30)]


@pytest.mark.parametrize("family", ["llama", "qwen3"])
def test_block_influence_equals_their_transcription_on_samples_of_different_lengths(family):
    model = tiny_model(family)
    ours = block_influence(model, calibration=_samples(), show_progress=False)
    theirs = _theirs_bi(model, _samples())
    assert len(ours) == len(theirs) + 1  # ours also scores the last block, which theirs never removes
    assert ours[:-1] == pytest.approx(theirs, rel=1e-5)


def test_shortgpt_layers_2_removes_exactly_two_blocks(tmp_path):
    model = tiny_model("qwen3")
    dense = copy.deepcopy(model)
    samples = _samples()
    bi = block_influence(dense, calibration=samples, show_progress=False)
    lowest_two = sorted(sorted(range(3), key=lambda i: bi[i])[:2])
    config = PruneConfig(method="shortgpt", shortgpt_layers=2)
    result = prune(model, None, config, calibration=samples, show_progress=False)
    assert result.removed_layers == lowest_two and len(decoder_layers(model)) == 1
    assert model.config.num_hidden_layers == 1 and len(model.config.layer_types) == 1
    kept = [i for i in range(3) if i not in lowest_two][0]
    assert torch.equal(decoder_layers(model)[0].mlp.up_proj.weight, dense.model.layers[kept].mlp.up_proj.weight)
    save_pruned(model, None, result, tmp_path / "short")
    recipe = json.loads((tmp_path / "short" / "pruning_recipe.json").read_text())
    assert recipe["shortgpt_layers"] == 2 and recipe["removed_layers"] == lowest_two and recipe["sparsity"] is None
    assert recipe["achieved_label"].startswith("2 of 3 blocks")
    assert recipe["calibration"]["shape"] == [4, 30]  # four whole samples, the longest 30 tokens


def test_shortgpt_layer_count_errors_name_the_value_and_the_range():
    with pytest.raises(ValueError, match=r"shortgpt_layers=2 with method='wanda'.*method='shortgpt'"):
        PruneConfig(method="wanda", sparsity=0.2, shortgpt_layers=2)
    with pytest.raises(ValueError, match=r"shortgpt_layers=0.*>= 1"):
        PruneConfig(method="shortgpt", shortgpt_layers=0)
    with pytest.raises(ValueError, match=r"sparsity is missing for method='shortgpt'.*or shortgpt_layers"):
        PruneConfig(method="shortgpt")
    with pytest.raises(ValueError, match=r"sparsity is missing for method='wanda'"):
        PruneConfig(method="wanda")
    with pytest.raises(ValueError, match=r"shortgpt_layers=3 for a model of 3 decoder blocks; allowed: 1 to 2"):
        prune(tiny_model("llama"), None, PruneConfig(method="shortgpt", shortgpt_layers=3), calibration=_samples(),
              show_progress=False)
    # both given: they must agree on the model's block count (round(0.34 x 3) = 1)
    with pytest.raises(ValueError, match=r"shortgpt_layers=2 and sparsity=0.34 disagree for 3 blocks"):
        prune(tiny_model("llama"), None, PruneConfig(method="shortgpt", sparsity=0.34, shortgpt_layers=2),
              calibration=_samples(), show_progress=False)
    assert removal_count(3, 0.67, 2) == 2 and removal_count(28, 0.1) == 3 and removal_count(36, None, 3) == 3


def test_method_defaults_give_shortgpt_its_own_calibration():
    short = PruneConfig(method="shortgpt", shortgpt_layers=1)
    assert (short.calibration, short.nsamples, short.seqlen) == ("shortgpt", 100, 1024)
    wanda = PruneConfig(method="wanda", sparsity=0.2)
    assert (wanda.calibration, wanda.nsamples, wanda.seqlen) == ("gsm8k", 128, 2048)
    assert PruneConfig(method="shortgpt", sparsity=0.2, calibration="allenai/c4", nsamples=8).calibration == "allenai/c4"
    assert PruneConfig(method="magnitude", sparsity=0.2, allocation="owl").owl_clip == "zero"
    assert PruneConfig(method="wanda", sparsity=0.2, allocation="owl").owl_clip == "reference"


# ------------------------------------------------------------------------------------ calibration
def _theirs_chunks(text, max_length):
    """process_content of their shortgpt_sampled_text (lib/data.py), transcribed."""
    paragraphs = [p.strip() for p in text.split("\n") if p.strip()]
    chunks, current_chunk, current_len = [], [], 0
    for para in paragraphs:
        para_len = len(para)
        if current_len + para_len + 1 <= max_length:
            current_chunk.append(para)
            current_len += para_len + 1
        else:
            if current_chunk:
                chunks.append(" ".join(current_chunk))
                current_chunk = [para]
                current_len = para_len
            else:
                chunks.append(para[:max_length])
                current_len = 0
    if current_chunk:
        chunks.append(" ".join(current_chunk))
    return chunks


def test_paragraph_chunks_equal_their_rule():
    import random

    rng = random.Random(0)
    lines = []
    for _ in range(300):  # short and long paragraphs, blank lines, indentation
        lines.append(" " * rng.randint(0, 2) + "x" * rng.choice([0, 3, 40, 90, 130, 260]))
    text = "\n".join(lines)
    for limit in (100, 256, 1024):
        assert pg19.paragraph_chunks(text, limit) == _theirs_chunks(text, limit)
    assert any(len(c) > 256 for c in pg19.paragraph_chunks(text, 256))  # their rule lets a chunk overflow


def test_shortgpt_text_from_pg19_with_a_fake_network(tmp_path, monkeypatch):
    import huggingface_hub

    listing = tmp_path / "validation_files.txt"
    listing.write_text("validation/1.txt\nvalidation/2.txt\ntrain/9.txt\n")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: str(listing))
    books = {pg19.BOOKS_URL + "validation/1.txt": "A first paragraph.\n\nA second one.\n",
             pg19.BOOKS_URL + "validation/2.txt": "y" * 1500 + "\nshort\n"}
    fetched = []
    fake = lambda url: fetched.append(url) or books[url]  # noqa: E731
    texts = pg19.shortgpt_texts(fetch=fake, cache=tmp_path / "cache")
    assert texts.source == "pg19" and list(texts) == ["A first paragraph. A second one.", "y" * 1024, "short"]
    pg19.shortgpt_texts(fetch=fake, cache=tmp_path / "cache")
    assert sorted(fetched) == sorted(books)  # cached: each book downloaded once


def test_shortgpt_source_falls_back_loudly_and_records_it(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(pg19, "validation_books", offline)
    with pytest.raises(ConnectionError, match="calibration source 'pg19' needs the network.*shortgpt-offline"):
        windows.calibration_texts("pg19")
    tok = _CharTokenizer()
    with pytest.warns(UserWarning, match="using 'shortgpt-offline'"):
        ids = windows.calibration_batches(tok, "shortgpt", nsamples=6, seqlen=40, seed=0)
    assert ids.source.startswith("shortgpt-offline (PG19 unreachable: OSError: no network")
    assert len(ids) == 6 and all(1 <= len(s) <= 40 for s in ids)
    # the same draw as an explicit offline source, and the source each names is what prune() records
    explicit = windows.calibration_batches(tok, "shortgpt-offline", nsamples=6, seqlen=40, seed=0)
    assert [s.tolist() for s in explicit] == [s.tolist() for s in ids] and explicit.source == "shortgpt-offline"
    result = prune(tiny_model("llama"), None, PruneConfig(method="shortgpt", shortgpt_layers=1), calibration=ids,
                   show_progress=False)
    assert result.calibration_used == ids.source
    with pytest.raises(ValueError, match="whole samples of different lengths.*needs \\(nsamples, seqlen\\) windows"):
        prune(tiny_model("llama"), None, PruneConfig(method="wanda", sparsity=0.2), calibration=ids, show_progress=False)


def test_whole_samples_draw_like_their_random_sample():
    import random

    texts = [f"document number {i} " * (i % 5 + 1) for i in range(30)]
    tok = _CharTokenizer()
    got = windows.whole_samples(tok, texts, nsamples=7, seqlen=50, seed=4)
    chosen = random.Random(4).sample(range(30), 7)  # their random.seed(seed); random.sample(chunks, n)
    assert [s.tolist() for s in got] == [tok(texts[i])["input_ids"][:50] for i in chosen]
    assert len(windows.whole_samples(tok, texts, nsamples=100, seqlen=50, seed=0)) == 30  # min(n, chunks), as theirs
    assert len(pg19.offline_chunks(windows.calibration_texts("gsm8k"))) >= 100  # the stand-in has enough chunks for the authors' 100 samples
