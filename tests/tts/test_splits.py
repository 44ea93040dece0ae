"""Train / validation problems are disjoint from every benchmark's test problems and from each other."""
import pytest

from tts_prune.tts.benchmarks import available, load_benchmark, resolve
from tts_prune.tts.benchmarks import split_problems
from tts_prune.tts.splits import split_of


def texts(problems):
    return {p["problem"] for p in problems}


def test_toy_splits_are_disjoint_from_test_and_each_other():
    test = texts(load_benchmark("toy-reasoning", 200))
    train, validation = split_problems("toy-reasoning", "train", 64), split_problems("toy-reasoning", "validation", 32)
    assert len(train) == 64 and len(validation) == 32
    assert not texts(train) & test and not texts(validation) & test and not texts(train) & texts(validation)
    assert all(split_of(p["problem"]) == "validation" for p in validation)
    assert split_problems("toy-reasoning", "train", 8, seed=0) == split_problems("toy-reasoning", "train", 8, seed=0)


@pytest.fixture(scope="module")
def real_data():
    """What `make data` does, from ../shared beside the checkout (as CI has it); skip only where neither exists."""
    from tts_prune import paths
    from tts_prune.tts import benchmarks

    if not available("gsm8k") and paths.SHARED_BENCHMARK_DIR.exists():
        benchmarks.fetch(show_progress=False)
    if not available("gsm8k"):
        pytest.skip("GSM8K files are neither in data/benchmarks (make data) nor in ../shared/data/benchmarks")


@pytest.mark.parametrize("benchmark", ["gsm8k", "aime24", "math500"])
def test_real_benchmarks_validate_on_gsm8k_train(benchmark, real_data):
    train, validation = split_problems(benchmark, "train", 200), split_problems(benchmark, "validation", 200)
    assert not texts(train) & texts(validation)
    test = texts(load_benchmark(benchmark)) if available(benchmark) else set()
    assert not (texts(train) | texts(validation)) & test
    assert all(p["id"].startswith(("train-gsm8k-train-", "validation-gsm8k-train-")) for p in train + validation)


def test_split_names_resolve_as_benchmarks():
    spec, loader = resolve("toy-reasoning@validation")
    assert spec.name == "toy-reasoning@validation" and spec.grader == "numeric"
    assert [p["id"] for p in loader(5, 0)] == [p["id"] for p in split_problems("toy-reasoning", "validation", 5)]
    with pytest.raises(ValueError, match="split 'test'"):
        resolve("toy-reasoning@test")
    with pytest.raises(ValueError, match="positive"):
        split_problems("toy-reasoning", "train", 0)
