"""The lockstep row batch of the decode loop: in-place cache, forks, compaction, grouped attention."""
import pytest
import torch

from tests._helpers_eval import toy_pair
from tests.conftest import FAMILIES, tiny_model
from tts_prune.tts.attention import NAME, grouped_attention
from tts_prune.tts.formats import FORMATS, build_prompt
from tts_prune.tts.generation import MIN_ROWS, DecodingConfig, sweep
from tts_prune.tts.rows import RowBatch

torch.set_num_threads(1)


def _reference_logits(model, ids: list[int]) -> torch.Tensor:
    """Independent computation: one plain forward over the unpadded sequence, last position."""
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0, -1]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_prefill_step_fork_keep_match_plain_forwards(family):
    model = tiny_model(family, seed=3)
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(0)
    lengths = [5, 9, 7, 3]
    seqs = [torch.randint(1, vocab, (n,), generator=g).tolist() for n in lengths]
    width = max(lengths)
    ids = torch.tensor([[0] * (width - len(s)) + s for s in seqs])
    mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs])
    batch = RowBatch(model, columns_hint=4)  # tiny hint: the buffers must grow while decoding
    with torch.no_grad(), grouped_attention(model):
        logits = batch.prefill(ids, mask)
        for r, s in enumerate(seqs):
            torch.testing.assert_close(logits[r], _reference_logits(model, s), atol=1e-4, rtol=1e-4)
        for step in range(6):
            if step == 2:  # fork rows 1 and 3: copies that then take their own tokens
                batch.fork([1, 3])
                seqs += [list(seqs[1]), list(seqs[3])]
            if step == 4:  # drop rows 0 and 4
                batch.keep([1, 2, 3, 5])
                seqs = [seqs[i] for i in (1, 2, 3, 5)]
            tokens = torch.randint(1, vocab, (len(seqs),), generator=g)
            for s, t in zip(seqs, tokens.tolist()):
                s.append(t)
            logits = batch.step(tokens)
            assert logits.shape[0] == batch.rows == len(seqs)
            for r, s in enumerate(seqs):
                torch.testing.assert_close(logits[r], _reference_logits(model, s), atol=1e-4, rtol=1e-4,
                                           msg=f"{family}: row {r} at step {step}")


def test_grouped_attention_equals_sdpa_and_is_restored():
    model = tiny_model("qwen2", seed=1)   # 4 query heads share 2 key/value heads
    assert model.config._attn_implementation == "sdpa"
    ids = torch.tensor([[0, 0, 5, 6, 7], [8, 9, 10, 11, 12]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    with torch.no_grad():
        plain = model(input_ids=ids, attention_mask=mask).logits
        with grouped_attention(model):
            assert model.config._attn_implementation == NAME
            grouped = model(input_ids=ids, attention_mask=mask).logits
    assert model.config._attn_implementation == "sdpa"
    torch.testing.assert_close(grouped[mask.bool()], plain[mask.bool()], atol=1e-5, rtol=1e-5)


def test_row_results_do_not_depend_on_the_row_count_from_min_rows():
    # The premise of MIN_ROWS: a linear layer rounds a row identically for any batch of >= MIN_ROWS rows.
    g = torch.Generator().manual_seed(0)
    weight, x = torch.randn(384, 200, generator=g), torch.randn(40, 200, generator=g)
    first = torch.nn.functional.linear(x[:MIN_ROWS], weight)
    for rows in range(MIN_ROWS, 41):
        assert torch.equal(torch.nn.functional.linear(x[:rows], weight)[:MIN_ROWS], first), rows


def test_finished_rows_leave_the_batch_and_branches_join_it():
    model, tok = toy_pair(seed=1, logit_scale=0.01)   # near-uniform: rows end their thinking at random times
    fmt = FORMATS["toy"]
    prompts = [build_prompt(tok, q, fmt) for q in ["1+2", "3+4", "5", "6+7+8", "9", "1+1"]]
    rows_seen = []
    hook = model.model.embed_tokens.register_forward_hook(lambda m, a, out: rows_seen.append(out.shape[0]))
    try:
        gens = sweep(model, tok, prompts, [5, 40], fmt, DecodingConfig(temperature=1.0, answer_tokens=3,
                     batch_size=6), seeds=[0], show_progress=False)
    finally:
        hook.remove()
    assert min(rows_seen) >= MIN_ROWS
    assert any(g.capped for g in gens if g.budget == 5)
    assert max(rows_seen) > 6  # answers branched at budget 5 joined the 6 rows still thinking
    assert rows_seen[-1] < max(rows_seen)  # ... and finished rows left the batch again
