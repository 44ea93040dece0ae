"""`tts-prune plan`: shapes from config.json, the paper grid on an H100, refusals, and a check against a CPU run.

Every number is checked against arithmetic written out here from the public configs and the formulas' sources.
"""
from __future__ import annotations

import json

import pytest

from tts_prune.study import grid
from tts_prune.study.hardware import GiB, EngineModel, accelerator, calibrated_efficiency
from tts_prune.study.plan import PlanOptions, plan_study
from tts_prune.study.shapes import model_shape
from tests._helpers_study import ROOT

PAPER = ROOT / "studies" / "paper.yaml"


def test_shapes_of_the_shipped_configs_match_hand_arithmetic():
    s1, qwen3 = model_shape("simplescaling/s1.1-7B"), model_shape("Qwen/Qwen3-8B")
    # KV bytes/token = layers x 2 (K and V) x kv_heads x head_dim x 2 bytes (bf16)
    assert s1.kv_bytes_per_token("bfloat16") == 28 * 2 * 4 * 128 * 2 == 57_344
    assert qwen3.kv_bytes_per_token("bfloat16") == 36 * 2 * 8 * 128 * 2 == 147_456
    # Qwen2.5-7B: q/k/v carry biases, untied head; Qwen3-8B: no biases, q/k RMSNorm of head_dim, untied head
    h, i, v, kv = 3584, 18944, 152064, 4 * 128
    block = h * h + h + 2 * (h * kv + kv) + h * h + 3 * h * i + 2 * h
    assert s1.params == 2 * v * h + 28 * block + h == 7_615_616_512
    h, i, v, q, kv = 4096, 12288, 151936, 32 * 128, 8 * 128
    block = h * q + 2 * h * kv + q * h + 3 * h * i + 2 * h + 2 * 128
    assert qwen3.params == 2 * v * h + 36 * block + h == 8_190_735_360
    assert dict((n, (o, k)) for n, o, k in qwen3.linears)["mlp.down_proj"] == (4096, 12288)
    assert qwen3.prunable_params == 36 * (h * q + 2 * h * kv + q * h + 3 * h * i)
    # ShortGPT's smaller model: one block's parameters and KV fewer per removed block; all of them is refused
    cut = qwen3.without_blocks(3)
    assert (cut.layers, cut.params) == (33, qwen3.params - 3 * block) and cut.kv_bytes_per_token("bfloat16") == 33 * 4096
    with pytest.raises(ValueError, match="0 <= n < 36"):
        qwen3.without_blocks(36)


def test_roofline_and_its_calibration():
    # the cited measurement: 3,281 tok/s at 27.23 ms per token -> 89.3 sequences; roofline at 500 tokens of context
    batch = 3281.19 * 27.23e-3
    roofline = (2 * 7.248e9 + batch * 500 * 131072) / 3.35e12
    assert calibrated_efficiency() == round(2 * roofline / 27.23e-3, 2) == 0.45
    shape, h100 = model_shape("simplescaling/s1.1-7B"), accelerator("h100-80gb")
    engine = EngineModel()
    # batch 1 at no context: bandwidth x efficiency / weight bytes
    assert engine.decode_rate(shape, h100, "bfloat16", 1, 0) == pytest.approx(0.45 * 3.35e12 / (2 * 7_615_616_512))
    # batch 64 at 4,096 positions: memory-bound (weights + KV) on an H100
    step = (2 * 7_615_616_512 + 64 * 4096 * 57_344) / 3.35e12
    assert engine.decode_rate(shape, h100, "bfloat16", 64, 4096) == pytest.approx(64 * 0.45 / step)
    assert EngineModel(throughput=3000).decode_rate(shape, h100, "bfloat16", 7, 99) == 3000
    with pytest.raises(ValueError, match="efficiency"):
        EngineModel(efficiency=1.5)
    with pytest.raises(ValueError, match="allowed"):
        accelerator("tpu-v9")


@pytest.fixture(scope="module")
def paper_h100():  # the divergence as the installed trace_divergence runs it (streamed since issue 19)
    return plan_study(grid.load_study(PAPER), options=PlanOptions(gpu="h100-80gb"))


def _generation(plan, model: str, method: str, benchmark: str, also: str = ""):
    """The generation step of one benchmark of one variant (its 04 cell's label holds ``also`` too)."""
    steps = plan.steps
    rows = steps[(steps["model"] == model) & steps["label"].str.contains(f"method={method},")
                 & steps["label"].str.contains(also, regex=False) & (steps["step"] == f"generation of {benchmark}")]
    assert len(rows) == 1
    return rows.iloc[0]


# Hand arithmetic from the shipped config.json files: (layers, hidden, intermediate, heads, kv_heads, vocab,
# max_position_embeddings, parameters, parameters of one decoder block)
S1 = (28, 3584, 18944, 28, 4, 152064, 32768, 7_615_616_512,
      3584 * 3584 + 3584 + 2 * (3584 * 512 + 512) + 3584 * 3584 + 3 * 3584 * 18944 + 2 * 3584)
QWEN3 = (36, 4096, 12288, 32, 8, 151936, 40960, 8_190_735_360,
         4096 * 4096 + 2 * 4096 * 1024 + 4096 * 4096 + 3 * 4096 * 12288 + 2 * 4096 + 2 * 128)
SHAPES = {"simplescaling/s1.1-7B": S1, "Qwen/Qwen3-8B": QWEN3}
BUDGETS = (512, 1024, 2048, 4096, 8192)  # eval_sequential_scaling.sh's TOKENS, both models, no budget 0


def _answer_allowance(budget: int, prompt: float, context: int, max_gen: int = 32768) -> int:
    """The answer's max_tokens after prompt + thinking to the budget + 16 forced-end tokens, written out: s1's
    harness gives the answer max_gen_toks, and vLLM ends it where the context ends."""
    used = int(prompt) + budget + 16
    return max(1, min(max_gen, context - used))


def test_paper_grid_on_an_h100_fits_and_prices_every_cell(paper_h100):
    from tts_prune.study.workload import problems

    plan = paper_h100
    assert plan.ok, plan.refusals
    study = grid.load_study(PAPER)
    cells = plan.cells
    # 01 per model, 02 per (model, sparsity), 03 per (model, Magnitude/Wanda x 3 allocations x 2 sparsities
    # + ShortGPT x 3 block counts), 04 per 03 recipe + the dense model, one 05
    recipes = 2 * 3 * 2 + 3
    expected = {"01-calibration": 2, "02-allocation": 2 * 2, "03-pruning": 2 * recipes,
                "04-tts-scaling": 2 * (recipes + 1), "05-report": 1}
    assert cells.groupby("notebook").size().to_dict() == expected and len(cells) == 69 == sum(expected.values())
    assert (cells[cells["notebook"] != "05-report"]["hours"] > 0).all()
    for model, (layers, hidden, inter, heads, kv_heads, vocab, context, params, block) in SHAPES.items():
        cfg = study.for_model(model)
        assert tuple(cfg.budgets) == BUDGETS and len(cfg.seeds) == 3
        seeds = 3
        kv = layers * 2 * kv_heads * 128 * 2
        prompt = problems("math500", None)
        allowance = [_answer_allowance(b, prompt.prompt_mean, context) for b in BUDGETS]
        assert min(allowance) > 200  # the 200-token mean answer is never capped here
        row = _generation(plan, model, "dense", "math500")
        # 500 problems x 3 seeds x (the largest budget's thinking + one 200-token answer per budget)
        assert row["tokens"] == 500 * seeds * (8192 + 5 * 200)
        # the authors: one run per budget, each thinking to its budget and answering
        assert row["authors_tokens"] == 500 * seeds * sum(b + 200 for b in BUDGETS)
        # worst case: every answer fills its allowance
        assert row["worst_tokens"] == 500 * seeds * (8192 + sum(allowance))
        # one engine per variant: every benchmark is a step of the variant's one 04 cell
        dense = cells[(cells["model"] == model) & (cells["notebook"] == "04-tts-scaling")
                      & cells["label"].str.contains("method=dense,")]
        assert len(dense) == 1
        steps = plan.steps[plan.steps["cell"] == dense["cell"].iloc[0]]
        assert sorted(steps["step"][steps["step"].str.startswith("generation of ")]) == sorted(
            f"generation of {b}" for b in ("math500", "aime24", "amc23", "gpqa-diamond"))
        # decode at the model's rate + a quarter of the variant's engine start + the prefill of prompts and
        # answer cues (compute-bound at 40% of 989 TFLOPS; bounded by its cost at the longest context)
        m = plan.models.set_index("model").loc[model]
        base = row["tokens"] / m["tokens_per_s"] + 120 / 4
        flops = 2 * params + 4 * layers * heads * 128 * (prompt.prompt_max + 8192 + 200)
        prefill = 500 * seeds * (prompt.prompt_mean + 16 * 5) * flops / (989e12 * 0.4)
        assert base / 3600 < row["hours"] < (base + prefill) / 3600
        # vLLM's pool: 0.9 x 79.2 GiB less weights and the activation profile; sequences at the longest sequence
        activations = 8192 * (4 * hidden + 2 * inter) * 2 + 256 * vocab * 8 + 1.5 * GiB
        pool = 0.9 * 79.2 * GiB - 2 * params - activations
        assert m["kv_pool_gib"] == pytest.approx(pool / GiB) and m["max_model_len"] == context
        longest = max(prompt_max + b + 16 + _answer_allowance(b, prompt_max, 10**9)
                      for b in BUDGETS for prompt_max in [max(problems(n, None).prompt_max for n in
                                                              ("math500", "aime24", "amc23", "gpqa-diamond"))])
        # a sequence ends at max_model_len (the context): that is the longest vLLM's pool must hold
        assert m["longest"] == longest > context and m["at_longest"] == int(pool // (context * kv))
        # ShortGPT removing N blocks serves a smaller model: N blocks' weights and KV bytes/token fewer, more
        # sequences in a larger pool, so each of its 04 cells costs less than the dense one
        previous = row["hours"]
        for n in (1, 2, 3):
            small = plan.models.set_index("model").loc[f"{model} -{n} block{'s' if n > 1 else ''}"]
            assert small["params_b"] == pytest.approx((params - n * block) / 1e9)
            assert small["kv_bytes_per_token"] == (layers - n) * 2 * kv_heads * 128 * 2
            assert small["kv_pool_gib"] == pytest.approx((pool + 2 * n * block) / GiB)
            cut = _generation(plan, model, "shortgpt", "math500", f"shortgpt_layers={n}")
            assert cut["tokens"] == row["tokens"] and cut["hours"] < previous
            previous = cut["hours"]
            # 03 scores blocks on the whole model (100 x 1024-token samples) and saves the smaller one at 1 GB/s
            producer = plan.steps[(plan.steps["model"] == model) & (plan.steps["notebook"] == "03-pruning")
                                  & plan.steps["label"].str.contains(f"shortgpt_layers={n}")]
            save = producer[producer["step"] == "save"]["hours"].iloc[0] * 3600
            assert save == pytest.approx(2 * (params - n * block) / 1e9)
            scoring = producer[producer["step"] == "shortgpt"]["hours"].iloc[0] * 3600
            assert scoring == pytest.approx(100 * 1024 * (2 * params + 4 * layers * heads * 128 * 512)
                                            / (989e12 * 0.4))
    t = plan.totals
    divergence = plan.steps[plan.steps["step"] == "divergence"]["hours"].sum()
    assert t["tts_hours"] == pytest.approx(t["generation_hours"] + divergence) and divergence > 0
    # one engine per 04 cell; the authors start one per (variant, benchmark, budget, seed)
    assert t["engine_starts"] == expected["04-tts-scaling"] == 32
    assert t["authors_engine_starts"] == 32 * 4 * 5 * 3 == 1920
    assert t["authors_generation_hours"] > 2 * t["generation_hours"] > 0
    text = plan.text()
    assert "refusals: none" in text and "s1.1-7B -3 blocks" in text and "h100-80gb-hours" in text


def test_h200_is_faster_and_holds_more(paper_h100):
    h200 = plan_study(grid.load_study(PAPER), options=PlanOptions(gpu="h200-141gb"))
    assert h200.ok
    assert h200.totals["generation_hours"] < paper_h100.totals["generation_hours"]
    assert (h200.models["at_longest"].to_numpy() > paper_h100.models["at_longest"].to_numpy()).all()


def test_whole_trace_divergence_is_refused_with_the_fix():
    # the old code: 16 traces of ~8.8k positions with their full-vocabulary logits at once
    plan = plan_study(grid.load_study(PAPER, models=["Qwen/Qwen3-8B"]),
                      options=PlanOptions(gpu="h100-80gb", divergence_batch=16, divergence_slice=0))
    assert not plan.ok
    assert all("step divergence" in r and "stream the divergence" in r for r in plan.refusals)
    # every pruned variant's divergence on every benchmark ((12 unstructured + 3 ShortGPT recipes) x 4), nothing else
    assert len(plan.refusals) == (plan.steps["step"] == "divergence").sum() == (2 * 3 * 2 + 3) * 4
    step = plan.steps[plan.steps["step"] == "divergence"].iloc[0]
    # 2 x weights + 16 traces' block activations + 16 x T x V x (2 + 8) bytes of logits, T = longest prompt + 8,192
    assert step["peak_gib"] > 16 * 8192 * 151936 * 10 / GiB


def test_divergence_settings_follow_the_code():
    """By default the plan prices the divergence as trace_divergence runs it: one trace and its slice_size
    positions at a time where it streams, else 04's batch_size (16) whole traces at once."""
    import inspect

    from tts_prune.pruning.divergence import trace_divergence
    from tts_prune.study.workload import problems

    accepted = inspect.signature(trace_divergence).parameters
    batch, positions = (1, accepted["slice_size"].default) if "slice_size" in accepted else (16, None)
    assert (batch, positions) == (1, 256)  # main since issue 19's memdev merge: one trace, 256 positions
    study = grid.load_study(PAPER, models=["Qwen/Qwen3-8B"])
    step = plan_study(study, options=PlanOptions(gpu="h200-141gb")).steps
    step = step[(step["step"] == "divergence")
                & step["label"].str.contains("method=wanda, allocation=owl, sparsity=0.2")]
    length = problems("math500", None).prompt_max + 8192
    h, i, v, params = 4096, 12288, 151936, 8_190_735_360
    logits = batch * (positions or length) * v * (2 + 8)
    expected = 2 * 2 * params + batch * length * (3 * i + 6 * h) * 2 + logits
    assert step["peak_gib"].iloc[0] == pytest.approx(expected / GiB)


def _llama70b(tmp_path):
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8192,
              "intermediate_size": 28672, "num_hidden_layers": 80, "num_attention_heads": 64,
              "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 131072,
              "rms_norm_eps": 1e-5, "tie_word_embeddings": False, "dtype": "bfloat16"}
    folder = tmp_path / "llama-70b-shape"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


def test_a_70b_model_on_one_gpu_names_the_step_and_the_fix(tmp_path, capsys):
    from tts_prune.cli import main

    model = _llama70b(tmp_path)
    study = tmp_path / "big.yaml"
    study.write_text(f"name: big\nmodels: ['{model}']\nmethods: [wanda]\nallocations: [uniform]\nsparsities: [0.2]\n"
                     "benchmarks: [aime24]\nbudgets: [512]\nseeds: [0]\nbackend: vllm\ndtype: bfloat16\n")
    assert main(["plan", "--study", str(study), "--gpu", "h100-80gb"]) == 1
    err = capsys.readouterr().err
    assert "will not fit on h100-80gb" in err
    # 131.4 GiB of weights + vLLM's activation profile over 0.9 x 79.2 GiB (less 1 GiB) per device
    activations = 8192 * (4 * 8192 + 2 * 28672) * 2 + 256 * 128256 * 8 + 1.5 * GiB
    devices = -(-(model_shape(model).weight_bytes("bfloat16") + activations) / GiB // (0.9 * 79.2 - 1))
    assert "step vLLM weights + activations" in err and f"tensor_parallel_size to {int(devices)}" in err
    assert "03-pruning" in err and "step wanda" in err and "device_map='auto'" in err
    assert "step divergence" in err and "dense and pruned weights together" in err
    assert model_shape(model).params == pytest.approx(70.55e9, rel=0.01)


def test_plan_predicts_the_tokens_of_a_cpu_run(tmp_path):
    """A random-init model never stops by itself: the run generates exactly the plan's worst case."""
    import tts_prune
    from tests._helpers_study import tiny_model_dir

    model = str(tiny_model_dir(tmp_path / "tiny"))
    study = grid.StudyConfig(name="cpu", models=(model,), methods=("wanda",), benchmarks=("toy-reasoning",),
                             budgets=(8, 16), seeds=(0, 1), temperature=1.0, answer_tokens=8, backend="transformers",
                             limit=3, notebooks=("04-tts-scaling",), dtype="float32")
    plan = plan_study(study, options=PlanOptions(gpu="cpu", engine=EngineModel(throughput=100.0)))
    dense = _generation(plan, model, "dense", "toy-reasoning")
    records = tts_prune.evaluate(model, "toy-reasoning", [8, 16], limit=3, seeds=[0, 1], temperature=1.0,
                                 answer_tokens=8, backend="transformers", batch_size=8, show_progress=False,
                                 out=tmp_path / "records")
    generated = (records.groupby(["problem_id", "seed"])["thinking_tokens"].max().sum()
                 + records["answer_tokens"].sum())
    assert dense["worst_tokens"] == 3 * 2 * (16 + 2 * 8)
    assert generated <= dense["worst_tokens"]
    if records["capped"].all() and records["answer_capped"].all():
        assert generated == dense["worst_tokens"]
    assert dense["tokens"] == 3 * 2 * (16 + 2 * 8)  # the assumed 200-token answers capped at their 8


def test_device_rehearsal_dry_run_on_cpu(capsys):
    """bench/device_check.py --rehearsal --dry-run: every step at tiny shapes, on CPU, with the plan beside it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("device_check", ROOT / "bench" / "device_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = module.argparse.Namespace(rehearsal=True, dry_run=True, models="Qwen/Qwen3-8B", prompts=2, budgets=None)
    rows = module.rehearse(args)
    steps = [r[1] for r in rows]
    assert steps[0] == "random init" and steps[1].startswith("wanda 20% (0.2")
    assert steps[2].startswith("sweep [16, 32]") and steps[3].startswith("divergence, 2 traces")
    assert all(r[2].seconds > 0 for r in rows)
    # the synthetic tokenizer round-trips every id of the model's vocabulary
    tokenizer = module.synthetic_tokenizer(512)
    ids = list(range(len(module.SPECIALS), 512))
    assert tokenizer(tokenizer.decode(ids), add_special_tokens=False)["input_ids"] == ids
    assert "plan MiB" in capsys.readouterr().out


def test_the_answer_allowance_of_max_gen_tokens_is_priced():
    """s1's max_gen_toks: the worst case fills each answer's allowance, capped where the context ends; a smaller
    max_gen_tokens from the command line replaces the study's."""
    from tts_prune.study.workload import problems

    study = grid.load_study(PAPER, models=["simplescaling/s1.1-7B"])
    prompt = problems("math500", None).prompt_mean
    for max_gen in (32768, 4096):
        plan = plan_study(study, options=PlanOptions(gpu="h100-80gb", max_gen_tokens=max_gen))
        row = _generation(plan, "simplescaling/s1.1-7B", "dense", "math500")
        allowance = [_answer_allowance(b, prompt, 32768, max_gen) for b in BUDGETS]
        assert row["worst_tokens"] == 500 * 3 * (8192 + sum(allowance))
        # the 200-token mean answer, where the allowance leaves that much
        assert row["tokens"] == 500 * 3 * (8192 + sum(min(200, a) for a in allowance))
    # the allowance is the answer's own: 4,096 after 8,192 thinking tokens; 32,768 is cut by s1.1's context
    assert _answer_allowance(8192, prompt, 32768, 4096) == 4096
    assert _answer_allowance(8192, prompt, 32768) == 32768 - int(prompt) - 8192 - 16
    plan = plan_study(study, options=PlanOptions(gpu="h100-80gb", max_gen_tokens=32768))
    m = plan.models.iloc[0]
    assert m["longest"] > 32768 == m["max_model_len"]  # s1.1's context: the longest sequences get cut
    assert m["at_longest"] == int(m["kv_pool_gib"] * GiB // (32768 * 57_344))
    assert "are cut there" in plan.text()


def test_vllm_options_of_the_study_are_followed(tmp_path):
    study = grid.StudyConfig(name="opts", models=("simplescaling/s1.1-7B",), methods=("wanda",), benchmarks=("aime24",),
                             budgets=(512,), seeds=(7,), backend="vllm", dtype="bfloat16", notebooks=("04-tts-scaling",),
                             params={"vllm_options": {"gpu_memory_utilization": 0.5, "max_model_len": 16384}})
    m = plan_study(study, gpu="h100-80gb").models.iloc[0]
    activations = 8192 * (4 * 3584 + 2 * 18944) * 2 + 256 * 152064 * 8 + 1.5 * GiB
    assert m["kv_pool_gib"] == pytest.approx((0.5 * 79.2 * GiB - 2 * 7_615_616_512 - activations) / GiB)
    assert m["max_model_len"] == 16384
    # 30 problems x 1 seed in flight at most: the batch is the problems, not vLLM's 256
    assert m["concurrency"] == 30
