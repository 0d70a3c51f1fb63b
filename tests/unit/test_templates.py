import jinja2
import pytest

from rewardkit.data.templates import (
    Conversation,
    check_template_name,
    conv_templates,
    get_conv_template,
    register_conv_template,
    templates_help,
)
from rewardkit.data.tokenize import _special_affixes, encode, install_chat_template
from rewardkit.errors import RewardkitError

MSGS = [
    {"role": "system", "content": 'Be "brief" {x}'},
    {"role": "user", "content": "a\nb"},
    {"role": "assistant", "content": "c"},
    {"role": "user", "content": "d"},
    {"role": "assistant", "content": "e"},
]


def test_seed_example_renders_like_the_seed():
    conv = Conversation(
        name="example",
        system_prompt="This is an example system prompt.",
        roles=("USER", "ASSISTANT"),
        prompt="USER: {query} ASSISTANT:",
        sep="</s>",
    )
    assert (
        conv.get_prompt([["Hello", "Hi there!"]])
        == "This is an example system prompt.</s>USER: Hello ASSISTANT:Hi there!"
    )


def test_registry_has_required_templates_and_rejects_unknown():
    assert {"vicuna", "alpaca", "chatml", "qwen", "llama3", "plain"} <= set(conv_templates)
    with pytest.raises(
        RewardkitError, match="--template_name nope: unknown template; accepted: vicuna, alpaca"
    ):
        get_conv_template("nope")
    register_conv_template(Conversation("test-extra", "", ("U", "A"), "U: {query}\nA: ", "\n"))
    try:  # the help text and the check follow the registry, including templates added later
        assert "test-extra" in templates_help() and templates_help().endswith(
            "or auto (the tokenizer's own chat template)"
        )
        check_template_name("test-extra")
        check_template_name("auto")
        check_template_name(None)
    finally:
        del conv_templates["test-extra"]
    with pytest.raises(RewardkitError, match="--template_name test-extra"):
        check_template_name("test-extra")
    with pytest.raises(RewardkitError, match="already registered"):
        register_conv_template(get_conv_template("vicuna"))


def test_vicuna_multi_turn_exact():
    text = get_conv_template("vicuna").render(MSGS)
    assert text == 'Be "brief" {x}</s>USER: a\nb ASSISTANT:c</s>USER: d ASSISTANT:e'


def test_chatml_default_and_custom_system():
    qwen = get_conv_template("qwen")
    assert qwen.render(MSGS[1:3]) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\na\nb<|im_end|>\n<|im_start|>assistant\nc"
    )
    assert qwen.render(MSGS[:3]).startswith('<|im_start|>system\nBe "brief" {x}<|im_end|>\n')


@pytest.mark.parametrize("name", sorted(conv_templates))
@pytest.mark.parametrize("messages", [MSGS, MSGS[1:], MSGS[1:3]])
def test_jinja_equals_python_rendering(name, messages):
    conv = conv_templates[name]
    rendered = (
        jinja2.Environment()
        .from_string(conv.to_jinja(prefix="<s>", suffix="[SEP]"))
        .render(messages=messages)
    )
    assert rendered == "<s>" + conv.render(messages) + "[SEP]"


def test_render_rejects_non_alternating():
    with pytest.raises(RewardkitError, match="alternate"):
        get_conv_template("plain").render([{"role": "assistant", "content": "x"}])


@pytest.mark.slow  # the packaged MiniLM tokenizer
def test_special_affixes_bos_and_bert(char_tokenizer, minilm_dir):
    from transformers import AutoTokenizer

    assert _special_affixes(char_tokenizer) == ("<s>", "")
    assert _special_affixes(AutoTokenizer.from_pretrained(minilm_dir)) == ("[CLS]", "[SEP]")


def test_no_double_bos_with_registry_and_own_template(char_tokenizer):
    conv = MSGS[1:3]
    own = encode(char_tokenizer, conv)  # own template starts with {{ bos_token }}
    assert own[0] == char_tokenizer.bos_token_id and own[1] != char_tokenizer.bos_token_id
    assert own.count(char_tokenizer.bos_token_id) == 1
    install_chat_template(char_tokenizer, "vicuna")
    ids = encode(char_tokenizer, conv)
    assert ids.count(char_tokenizer.bos_token_id) == 1 and ids[0] == char_tokenizer.bos_token_id
    # The naive way (render, then tokenize with special tokens) would double it: the bug we avoid.
    naive = char_tokenizer(char_tokenizer.apply_chat_template(conv, tokenize=False))["input_ids"]
    assert naive[:2] == [char_tokenizer.bos_token_id] * 2
    # And it equals what apply_chat_template(tokenize=True) gives, i.e. what a user of the checkpoint gets.
    assert ids == char_tokenizer.apply_chat_template(conv, tokenize=True, return_dict=False)


def test_auto_uses_own_template_or_plain(char_tokenizer):
    assert install_chat_template(char_tokenizer, "auto") == "tokenizer's own chat template"
    char_tokenizer.chat_template = None
    assert install_chat_template(char_tokenizer, None).startswith("registry template 'plain'")
