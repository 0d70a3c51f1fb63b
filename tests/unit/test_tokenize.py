from conftest import make_char_tokenizer

from rewardkit.data.schema import PreferencePair
from rewardkit.data.tokenize import (
    common_prefix_len,
    encode,
    encode_for_scoring,
    encode_pair,
    install_chat_template,
)


def _pair(turns: int, answer_len: int = 3) -> PreferencePair:
    prompt = []
    for i in range(turns):
        prompt += [{"role": "user", "content": f"q{i}" * 5}, {"role": "assistant", "content": f"a{i}" * 5}]
    prompt.append({"role": "user", "content": "last"})
    return PreferencePair(prompt, "C" * answer_len, "R" * (answer_len + 1), system="sys", source="t:1")


def test_pair_fits_untouched(char_tokenizer):
    pair = _pair(2)
    enc = encode_pair(char_tokenizer, pair, 10_000)
    assert enc.turns_trimmed == 0
    assert enc.chosen_ids == encode(char_tokenizer, pair.chosen_messages())
    assert enc.rejected_ids == encode(char_tokenizer, pair.rejected_messages())


def test_trims_oldest_turns_first_and_keeps_answers_and_system(char_tokenizer):
    pair = _pair(3)
    full = len(encode(char_tokenizer, pair.rejected_messages()))
    enc = encode_pair(char_tokenizer, pair, full - 1)
    assert enc.turns_trimmed == 1
    text = "".join(char_tokenizer.convert_ids_to_tokens(enc.rejected_ids))
    assert "q0" not in text and "q1q1" in text and text.endswith("RRRR</s>") and "sys" in text
    assert len(enc.rejected_ids) == full - (1 + 10 + 1 + 1 + 10 + 1)


def test_drops_pair_when_even_last_turn_cannot_fit(char_tokenizer):
    pair = _pair(1, answer_len=50)
    assert encode_pair(char_tokenizer, pair, 40) is None


def test_scoring_flags_truncation(char_tokenizer):
    pair = _pair(3)
    ids, truncated = encode_for_scoring(char_tokenizer, pair.chosen_messages(), 10_000)
    assert not truncated
    ids2, truncated2 = encode_for_scoring(char_tokenizer, pair.chosen_messages(), len(ids) - 1)
    assert truncated2 and len(ids2) < len(ids) and ids2[-4:] == ids[-4:]
    ids3, truncated3 = encode_for_scoring(char_tokenizer, pair.chosen_messages(), 12)
    # even the last turn is too long: the leading <s> (id 1) stays, then the last 11 tokens
    assert truncated3 and ids[0] == 1 and ids3 == [1] + ids[-11:]
    encoder_like = make_char_tokenizer(add_bos=False)
    plain_ids, _ = encode_for_scoring(encoder_like, pair.chosen_messages(), 10_000)
    assert encode_for_scoring(encoder_like, pair.chosen_messages(), 12) == (plain_ids[-12:], True)


def test_common_prefix_len():
    assert common_prefix_len([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix_len([], [1]) == 0
    assert common_prefix_len([1, 2], [1, 2]) == 2


def test_registry_template_pair_shares_prompt_prefix(char_tokenizer):
    install_chat_template(char_tokenizer, "chatml")
    enc = encode_pair(char_tokenizer, _pair(1), 10_000)
    shared = common_prefix_len(enc.chosen_ids, enc.rejected_ids)
    assert "".join(char_tokenizer.convert_ids_to_tokens(enc.chosen_ids[:shared])).endswith("assistant\n")
