"""The budget-forcing protocol module both backends import: result assembly and stop ids, checked by hand."""
from tts_prune.models.toy import build_tokenizer
from tts_prune.tts import generation, protocol, stream, vllm_backend

TOK = build_tokenizer()


def ids(text: str) -> list[int]:
    return TOK(text, add_special_tokens=False)["input_ids"]


def test_assemble_records_forced_and_natural_ends():
    thinking = ids("abcdef")  # character-level: one token per character
    answers = {2: (ids("X"), False, ids("|F2|")), None: (ids("YZ"), True, ids("|N|"))}
    records = protocol.assemble(TOK, index=5, seed=3, budgets=(2, 8, 16), thinking=thinking, natural_at=6,
                                wait_starts=[1, 4], answers=answers)
    cut, natural, same = records
    assert (cut.thinking, cut.answer, cut.forced, cut.capped, cut.waits, cut.thinking_tokens) == \
        ("ab", "X", "|F2|", True, 1, 2)  # one "Wait" began below 2 tokens
    assert (natural.thinking, natural.answer, natural.forced, natural.capped, natural.answer_capped,
            natural.waits, natural.thinking_tokens, natural.answer_tokens) == ("abcdef", "YZ", "|N|", False, True, 2, 6, 2)
    assert same == protocol.Generation(5, 3, 16, "abcdef", "YZ", 6, 2, False, 2, True, "|N|")  # same record at B > 6
    assert [r.budget for r in records] == [2, 8, 16] and {r.index for r in records} == {5}


def test_assemble_without_an_answer_is_an_empty_record():
    # the model ended its turn (no answer follows): no owner in ``answers``
    record, = protocol.assemble(TOK, 0, 0, (8,), ids("ab"), natural_at=2, wait_starts=[], answers={})
    assert (record.answer, record.answer_tokens, record.forced, record.capped) == ("", 0, "", False)


def test_both_backends_share_the_protocol():
    assert generation.DecodingConfig is protocol.DecodingConfig is stream.DecodingConfig
    assert issubclass(generation._Rules, protocol.FormatRules)
    assert stream.assemble is generation.assemble is protocol.assemble

    class Config:
        eos_token_id = [7, 9]

    class Model:
        generation_config = Config()

    im_end = TOK.get_vocab()["<|im_end|>"]
    assert protocol.stop_token_ids(Model(), TOK) == {TOK.eos_token_id, 7, 9, im_end}
    backend = vllm_backend.VLLMBackend("f", TOK, [7, 9], prepare=None)
    assert backend.stops == protocol.chat_stop_ids(TOK, [7, 9]) == {TOK.eos_token_id, 7, 9, im_end}
