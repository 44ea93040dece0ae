"""The task registry: each task's training pool and calibration source come from its training data, never its
test problems, and the pruner's text-source registry knows every calibration source a task names."""
import pytest

from tts_prune import paths
from tts_prune.models.toy import build_tokenizer
from tts_prune.pruning.windows import TEXT_SOURCES, calibration_texts
from tts_prune.tts.benchmarks import BENCHMARKS, gsm8k_problems, load_benchmark, pool_of


def test_every_named_calibration_source_is_registered_in_the_pruning_layer():
    named = {b.calibration for b in BENCHMARKS.values() if b.calibration}
    assert named == {"gsm8k", "toy-reasoning"} and named <= set(TEXT_SOURCES)
    assert pool_of("toy-reasoning") == "toy-reasoning" and pool_of("gsm8k") == "gsm8k"
    assert pool_of("math500") == pool_of("aime24") == pool_of("gpqa-diamond") == "gsm8k"


def test_toy_calibration_and_pool_never_hold_a_test_problem():
    tokenizer = build_tokenizer()
    test = {p["problem"] for p in load_benchmark("toy-reasoning", 500)}
    pool = {p["problem"] for p in BENCHMARKS["toy-reasoning"].train(64, 0)}
    assert pool and not pool & test
    texts = calibration_texts(BENCHMARKS["toy-reasoning"].calibration, nsamples=16, tokenizer=tokenizer)
    # each text is one rendered conversation: its user turn is "Sum the digits: ..." up to the end of turn
    asked = {t.split("<|im_start|>user\n", 1)[1].split("<|im_end|>", 1)[0] for t in texts}
    assert len(asked) > 16 and not asked & test


@pytest.mark.skipif(not (paths.BENCHMARK_DIR / "gsm8k_train.jsonl.gz").exists(), reason="GSM8K not bundled")
def test_gsm8k_calibration_is_its_training_pool_parsed_once():
    train = BENCHMARKS["gsm8k"].train(0, 0)
    test = gsm8k_problems("gsm8k_test.jsonl", "gsm8k")
    assert not {p["problem"] for p in train} & {p["problem"] for p in test}
    texts = calibration_texts("gsm8k")
    assert len(texts) == len(train) and all(t.startswith(p["problem"] + "\n") for t, p in zip(texts, train))
    assert train[0]["answer"] == train[0]["answer"].strip() and "####" not in train[0]["answer"]
