"""studies/rehearsal.yaml keeps the shape of studies/paper.yaml: the same methods, allocations, sparsities,
seeds, temperature and backend, a stand-in for each paper model in that model's thinking format, and the
paper's benchmarks. (`make rehearsal` runs it; here only its grid is checked.)"""
from pathlib import Path

from tts_prune.study import grid

ROOT = Path(__file__).resolve().parents[2]


def test_rehearsal_has_the_papers_shape(tmp_path):
    paper = grid.load_study(ROOT / "studies" / "paper.yaml")
    rehearsal = grid.load_study(ROOT / "studies" / "rehearsal.yaml")
    for key in ("methods", "allocations", "sparsities", "seeds", "temperature", "backend"):
        assert getattr(rehearsal, key) == getattr(paper, key), key
    assert rehearsal.seeds == (7, 11, 42) and rehearsal.temperature == 1.0 and rehearsal.backend == "vllm"
    assert {"math500", "gpqa-diamond", "aime24"} <= set(rehearsal.benchmarks) <= set(paper.benchmarks)
    stand_ins = {"qwen2.5-coder-0.5b-instruct": "s1", "toy-reasoner": "toy"}  # s1.1-7B, Qwen3-8B
    assert set(rehearsal.models) == set(stand_ins)
    assert {paper.for_model(m).thinking_format for m in paper.models} == {"s1", "qwen3"}
    cells = [c for c in grid.expand(rehearsal, reports=tmp_path) if c.notebook == "04-tts-scaling"]
    for cell in cells:
        assert cell.parameters["thinking_format"] == stand_ins[cell.axes["model"]]
        assert cell.parameters["backend"] == "vllm" and cell.parameters["seeds"] == [7, 11, 42]
    # every method, allocation and sparsity of the paper's grid reaches 04 somewhere, each model has a dense
    # baseline and a pruned run, and the s1.1 stand-in is evaluated on all three paper benchmarks
    assert {c.axes["method"] for c in cells} == {"dense", *paper.methods}
    assert {c.axes["allocation"] for c in cells} == set(paper.allocations)
    assert {c.axes["sparsity"] for c in cells} == {0.0, *paper.sparsities}
    for model in stand_ins:
        assert {"dense"} < {c.axes["method"] for c in cells if c.axes["model"] == model}
    qwen = [c.parameters["benchmarks"] for c in cells if c.axes["model"] == "qwen2.5-coder-0.5b-instruct"]
    assert len(qwen) == 2 and all(set(b) == {"math500", "gpqa-diamond", "aime24"} for b in qwen)  # dense, wanda


def test_rehearsal_vllm_context_fits_each_model(tmp_path):
    """vLLM refuses a max_model_len beyond the model's positions (the toy has 512): each cell asks for no more."""
    from tts_prune.models.toy import build_tokenizer

    context = {"toy-reasoner": build_tokenizer().model_max_length, "qwen2.5-coder-0.5b-instruct": 32768}
    rehearsal = grid.load_study(ROOT / "studies" / "rehearsal.yaml")
    cells = [c for c in grid.expand(rehearsal, reports=tmp_path) if c.notebook == "04-tts-scaling"]
    for cell in cells:
        wanted = cell.parameters["vllm_options"]["max_model_len"]
        assert wanted <= context[cell.axes["model"]], (cell.label, wanted)
        longest = max(cell.parameters["budgets"]) + cell.parameters["answer_tokens"]
        assert longest < wanted, (cell.label, longest)
