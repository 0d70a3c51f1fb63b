import pytest
from conftest import CHAT_TEMPLATE, make_char_tokenizer

from rewardkit.data.schema import PreferencePair
from rewardkit.data.tokenize import (
    common_prefix_len,
    encode,
    encode_for_scoring,
    encode_pair,
    install_chat_template,
)
from rewardkit.errors import RewardkitError


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


def _framed_tokenizer():
    """The char tokenizer, with two special tokens before and two after every plain text (as some encoders)."""
    from tokenizers import processors

    tok = make_char_tokenizer(add_bos=False, chat_template=None)
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> <s> $A </s> </s>", special_tokens=[("<s>", 1), ("</s>", 2)]
    )
    return tok


CHAT = [{"role": "user", "content": "ab"}, {"role": "assistant", "content": "cd"}]


def test_raw_text_template_writes_trl_text_exactly():
    bos = make_char_tokenizer(chat_template=None)
    assert install_chat_template(bos, "raw_text").startswith("raw text")
    assert bos.apply_chat_template(CHAT, tokenize=False) == "<s>abcd</s>"  # EOS appended
    framed = _framed_tokenizer()
    install_chat_template(framed, "raw_text")
    assert framed.apply_chat_template(CHAT, tokenize=False) == "<s><s>abcd</s></s>"  # already ends with EOS
    no_eos = make_char_tokenizer(chat_template=None)
    no_eos.eos_token = None
    install_chat_template(no_eos, "raw_text")
    assert no_eos.apply_chat_template(CHAT, tokenize=False) == "<s>abcd"


def test_registry_template_keeps_every_special_token_around_the_text():
    framed = _framed_tokenizer()
    said = install_chat_template(framed, "plain")
    assert said == "registry template 'plain' (special tokens '<s><s>'…'</s></s>')"
    text = framed.apply_chat_template(CHAT, tokenize=False)
    assert text.startswith("<s><s>") and not text.startswith("<s><s><s>")
    assert text.endswith("</s></s>")


def test_auto_keeps_the_tokenizers_own_template_else_plain():
    own = make_char_tokenizer()
    for name in (None, "", "auto"):
        assert install_chat_template(own, name) == "tokenizer's own chat template"
        assert own.chat_template == CHAT_TEMPLATE
    for name in ("", "auto"):
        bare = make_char_tokenizer(chat_template=None)
        assert install_chat_template(bare, name).startswith("registry template 'plain'")
        plain = make_char_tokenizer(chat_template=None)
        install_chat_template(plain, "plain")
        assert bare.chat_template == plain.chat_template


def _turns(n_users: int, system: bool) -> list[dict]:
    messages = [{"role": "system", "content": "SYS"}] if system else []
    for i in range(n_users - 1):
        messages += [{"role": "user", "content": f"u{i}" * 4}, {"role": "assistant", "content": f"a{i}" * 4}]
    return messages + [{"role": "user", "content": "last"}, {"role": "assistant", "content": "ANSWER"}]


def test_scoring_trims_whole_oldest_turns_keeping_system_and_answer(char_tokenizer):
    for system in (True, False):
        for n_users in (2, 3):
            messages = _turns(n_users, system)
            full = encode(char_tokenizer, messages)
            assert encode_for_scoring(char_tokenizer, messages, len(full)) == (full, False)  # exact fit
            head = messages[:1] if system else []
            trimmed = encode(char_tokenizer, head + messages[len(head) + 2 :])  # oldest user + assistant gone
            assert encode_for_scoring(char_tokenizer, messages, len(full) - 1) == (trimmed, True)
            assert encode_for_scoring(char_tokenizer, messages, len(trimmed)) == (trimmed, True)


def test_scoring_passes_the_rows_tools_to_the_template():
    tok = make_char_tokenizer(chat_template="{% if tools %}T{{ tools | length }}{% endif %}" + CHAT_TEMPLATE)
    tools = [{"type": "function", "function": {"name": "f"}}]
    ids, truncated = encode_for_scoring(tok, [{**CHAT[0], "tools": tools}, CHAT[1]], 10_000)
    assert not truncated
    assert "".join(tok.convert_ids_to_tokens(ids)).startswith("T1<s>")


def test_clip_keeps_leading_specials_only_when_present_and_room_is_left():
    from rewardkit.data.tokenize import clip_tokens

    tok = make_char_tokenizer()  # leading <s>, id 1
    assert clip_tokens(tok, [1, 5, 6, 7, 8], 3) == [1, 7, 8]
    assert clip_tokens(tok, [5, 6, 7, 8, 9], 3) == [7, 8, 9]  # no <s> in front: nothing to keep
    assert clip_tokens(tok, [1, 5, 6], 1) == [6]  # no room beside the end
    assert clip_tokens(tok, [1, 5, 6], 3) == [1, 5, 6]


def test_answer_suffix_is_what_the_template_writes_after_an_answer():
    from rewardkit.data.tokenize import answer_suffix

    assert answer_suffix(make_char_tokenizer()) == "</s>"
    chatml = make_char_tokenizer(
        chat_template="{% for m in messages %}<|im_start|>{{ m['content'] }}<|im_end|>\n{% endfor %}"
    )
    assert answer_suffix(chatml) == "<|im_end|>\n"
    registry = make_char_tokenizer(chat_template=None)
    install_chat_template(registry, "chatml")
    assert answer_suffix(registry) == ""  # the registry's templates end the last answer with nothing
    nothing = make_char_tokenizer(chat_template="{% for m in messages %}{{ m['content'] }}{% endfor %}")
    assert answer_suffix(nothing) == ""
    hidden = make_char_tokenizer(
        chat_template="{% for m in messages %}#{% endfor %}"
    )  # answer text not written
    assert answer_suffix(hidden) == ""


def test_complete_turn_each_rule():
    from rewardkit.data.tokenize import complete_turn

    im_end = ["<|im_end|>"]
    assert (
        complete_turn("a4<|im_end|>\n", "<|im_end|>\n", im_end, "<|im_end|>") == "a4<|im_end|>\n"
    )  # whole suffix
    assert (
        complete_turn("a4<|im_end|>", "<|im_end|>\n", im_end, "<|im_end|>") == "a4<|im_end|>\n"
    )  # rest added
    assert complete_turn("a4", "<|im_end|>\n", im_end, "<|im_end|>") == "a4"  # no end-of-turn token: as sent
    assert complete_turn("a4</s>", "", ["</s>"], "</s>") == "a4"  # an EOS the template never writes
    assert complete_turn("a4</s>", "", ["</s>"], None) == "a4</s>"
    assert complete_turn("a4", "", ["</s>"], "</s>") == "a4"
    # the suffix's second special token is where the text stops: only what follows it is added
    two = "<e><f>\n"
    assert complete_turn("a4<e><f>", two, ["<e>", "<f>"], None) == "a4<e><f>\n"
    assert complete_turn("a4<e>", two, ["<e>", "<f>"], None) == "a4<e><f>\n"
    # a special token repeated in the suffix: the longest beginning of the suffix the text ends with counts
    assert complete_turn("a4<e>x<e>", "<e>x<e>\n", ["<e>"], None) == "a4<e>x<e>\n"
    assert complete_turn("a4<e>", "<e>x<e>\n", ["<e>"], None) == "a4<e>x<e>\n"


def test_eos_last_template_text_is_openrlhfs():
    from rewardkit.data.tokenize import eos_last_template

    tok = make_char_tokenizer(chat_template="{% for m in messages %}{{ m['content'] }}\n\n{% endfor %}")
    tok.chat_template = eos_last_template(tok.chat_template, "</s>")
    assert (
        tok.apply_chat_template(CHAT, tokenize=False) == "ab\n\ncd </s>"
    )  # trailing newlines dropped, " " + EOS
    ends = make_char_tokenizer(chat_template="{% for m in messages %}{{ m['content'] }}</s>{% endfor %}")
    ends.chat_template = eos_last_template(ends.chat_template, "</s>")
    assert ends.apply_chat_template(CHAT, tokenize=False) == "ab</s>cd</s>"  # already ends with EOS


def test_split_tools_takes_the_list_off_the_first_message():
    from rewardkit.data.tokenize import split_tools

    tools = [{"type": "function", "function": {"name": "f"}}]
    assert split_tools([{**CHAT[0], "tools": tools}, CHAT[1]]) == (CHAT, tools)
    assert split_tools(list(CHAT)) == (CHAT, None)
    assert split_tools([]) == ([], None)


def test_encode_pair_exact_ids_fields_and_trim_count(char_tokenizer):
    user = [{"role": "user", "content": "hi"}]
    bare = PreferencePair(user, "A", "BB", margin=0.5, source="f:7")
    enc = encode_pair(char_tokenizer, bare, 10_000)
    assert enc.chosen_ids == encode(
        char_tokenizer, [*user, {"role": "assistant", "content": "A"}]
    )  # no system
    assert enc.rejected_ids == encode(char_tokenizer, [*user, {"role": "assistant", "content": "BB"}])
    assert (enc.margin, enc.source, enc.turns_trimmed) == (0.5, "f:7", 0)
    assert encode_pair(char_tokenizer, bare, len(enc.rejected_ids)).turns_trimmed == 0  # exact fit
    pair = _pair(3)
    last = PreferencePair(pair.prompt[-1:], pair.chosen, pair.rejected, system=pair.system)
    need = len(encode_pair(char_tokenizer, last, 10_000).rejected_ids)
    two = encode_pair(char_tokenizer, pair, need)  # only the last user turn fits: three turns dropped
    assert two.turns_trimmed == 3 and two.rejected_ids == encode(char_tokenizer, last.rejected_messages())


def test_encode_pair_passes_the_rows_tools():
    tok = make_char_tokenizer(chat_template="{% if tools %}T{{ tools | length }}{% endif %}" + CHAT_TEMPLATE)
    tools = [{"type": "function", "function": {"name": "f"}}]
    pair = PreferencePair([{"role": "user", "content": "hi"}], "A", "B", tools=tools)
    enc = encode_pair(tok, pair, 10_000)
    for ids in (enc.chosen_ids, enc.rejected_ids):
        assert "".join(tok.convert_ids_to_tokens(ids)).startswith("T1<s>")


def test_answer_suffix_reads_the_assistant_turns_end():
    from rewardkit.data.tokenize import answer_suffix

    by_role = make_char_tokenizer(  # as strict templates do, it refuses roles it does not know
        chat_template="{% for m in messages %}{{ m['content'] }}"
        "{% if m['role'] == 'assistant' %}<e>\n{% elif m['role'] == 'user' %}</u>"
        "{% else %}{{ raise_exception('unknown role') }}{% endif %}{% endfor %}"
    )
    assert answer_suffix(by_role) == "<e>\n"
    first = make_char_tokenizer(chat_template="{{ messages[-1]['content'] }}END")  # the answer at index 0
    assert answer_suffix(first) == "END"
    hidden = make_char_tokenizer(
        chat_template="{% for m in messages %}<turn of {{ m['role'] }} not shown>{% endfor %}"
    )
    assert answer_suffix(hidden) == ""  # the answer's text is not written: nothing to read after it


def test_encode_without_a_chat_template_says_what_to_do():
    with pytest.raises(
        RewardkitError, match=r"^the tokenizer has no chat template: call install_chat_template first$"
    ):
        encode(make_char_tokenizer(chat_template=None), CHAT)
