"""Kind 2 (custom classifiers): value heads, remote code and Python functions, through `load_reward_model`.

Every checkpoint is built here in tmp_path from a tiny Llama; expected rewards are computed by hand from
the same tensors, one unpadded conversation at a time.
"""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
from conftest import make_char_tokenizer
from safetensors.torch import save_file

from rewardkit.data.tokenize import encode
from rewardkit.errors import RewardkitError
from rewardkit.scorers.custom import find_value_head_prefix
from rewardkit.scorers.function import load_function
from rewardkit.scorers.load import load_reward_model

CONVS = [
    [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue, like the sky on a clear day."},
    ],
    [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello there!"},
        {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "Goodbye."},
    ],
]


def tiny_llama_config(tokenizer, **extra):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **extra,
    )


def save_weights(folder, state: dict[str, torch.Tensor], shards: int = 1) -> None:
    """model.safetensors, or `shards` files with a model.safetensors.index.json."""
    state = {k: v.contiguous() for k, v in state.items()}
    if shards == 1:
        save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
        return
    names = sorted(state)
    weight_map = {}
    for s in range(shards):
        file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: state[n] for n in names[s::shards]}
        save_file(part, folder / file, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, file))
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )


def write_config(folder, config, **fields) -> None:
    data = config.to_dict()
    data.update(fields)
    (folder / "config.json").write_text(json.dumps(data))


# A template that ends an answer with a newline and no EOS, as many do (ChatML ends it "<|im_end|>\n").
NEWLINE_TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"


def openrlhf_checkpoint(folder, prefix="score", shards=1, chat_template=None, **config_fields):
    """OpenRLHF's reward-model layout: `model.*` backbone keys + `<prefix>.weight` [1, hidden]."""
    from transformers import LlamaModel

    folder.mkdir()
    tok = make_char_tokenizer()
    tok.chat_template = chat_template or tok.chat_template
    config = tiny_llama_config(tok)
    torch.manual_seed(0)
    backbone = LlamaModel(config).eval()
    head = torch.randn(1, 32) * 0.5
    state = {f"model.{k}": v for k, v in backbone.state_dict().items()} | {f"{prefix}.weight": head}
    save_weights(folder, state, shards)
    write_config(folder, config, **({"architectures": ["LlamaForCausalLM"]} | config_fields))
    tok.save_pretrained(folder)
    return backbone, head, tok


def llama_factory_checkpoint(folder):
    """LLaMA-Factory's layout: a causal LM folder + value_head.safetensors (v_head.summary.*)."""
    from transformers import LlamaForCausalLM

    tok = make_char_tokenizer()
    torch.manual_seed(1)
    causal = LlamaForCausalLM(tiny_llama_config(tok)).eval()
    causal.save_pretrained(folder)
    tok.save_pretrained(folder)
    weight, bias = torch.randn(1, 32) * 0.5, torch.tensor([0.25])
    save_file(
        {"v_head.summary.weight": weight, "v_head.summary.bias": bias}, folder / "value_head.safetensors"
    )
    return causal.model, weight, bias, tok


@torch.no_grad()
def last_hidden(backbone, tok, conv) -> torch.Tensor:
    ids = torch.tensor([encode(tok, conv)])
    return backbone(input_ids=ids).last_hidden_state[0, -1]


def openrlhf_ids(tok, conv) -> list[int]:
    """What OpenRLHF's RewardDataset tokenizes: the chat text without trailing newlines, " " + EOS
    appended when it does not end with EOS, no special tokens added."""
    text = tok.apply_chat_template(conv, tokenize=False).rstrip("\n")
    if not text.endswith(tok.eos_token):
        text += " " + tok.eos_token
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert ids[-1] == tok.eos_token_id
    return ids


@torch.no_grad()
def openrlhf_hidden(backbone, tok, conv) -> torch.Tensor:
    """The hidden state OpenRLHF's RewardModel reads the reward from: the last token (EOS)."""
    return backbone(input_ids=torch.tensor([openrlhf_ids(tok, conv)])).last_hidden_state[0, -1]


# --- value heads -------------------------------------------------------------------------------------


def test_openrlhf_layout_detected_scored_and_normalised(tmp_path):
    backbone, head, tok = openrlhf_checkpoint(
        tmp_path / "rm",
        chat_template=NEWLINE_TEMPLATE,
        value_head_prefix="score",
        normalize_reward=True,
        mean=0.5,
        std=2.0,
    )
    rm = load_reward_model(str(tmp_path / "rm"))
    assert rm.kind == "value_head" and "OpenRLHF" in rm.detected_because
    expected = [float(openrlhf_hidden(backbone, tok, c) @ head[0]) for c in CONVS]
    got = rm.score_detailed(CONVS)
    assert [s.score for s in got] == pytest.approx(expected, abs=1e-5)
    assert [s.normalized for s in got] == pytest.approx([(e - 0.5) / 2.0 for e in expected], abs=1e-5)
    assert [s.num_tokens for s in got] == [len(openrlhf_ids(tok, c)) for c in CONVS]
    assert all(encode(tok, c) != openrlhf_ids(tok, c) for c in CONVS)  # not the chat template's text as is
    plain = [float(last_hidden(backbone, tok, c) @ head[0]) for c in CONVS]
    assert all(abs(a - b) > 1e-4 for a, b in zip(plain, expected))  # the token read is not the plain last one


def test_openrlhf_as_saved_by_openrlhf_without_normalize_reward(tmp_path):
    # OpenRLHF's save_pretrained records its dynamic class name; the backbone comes from model_type.
    backbone, head, tok = openrlhf_checkpoint(
        tmp_path / "rm",
        prefix="value_head",
        architectures=["RewardModel"],
        normalize_reward=False,
        mean=0.5,
        std=2.0,
    )
    rm = load_reward_model(str(tmp_path / "rm"), kind="value_head")
    got = rm.score_detailed(CONVS[:1])[0]
    assert got.score == pytest.approx(float(openrlhf_hidden(backbone, tok, CONVS[0]) @ head[0]), abs=1e-5)
    assert got.normalized is None


def test_llama_factory_layout_detected_and_scored(tmp_path):
    backbone, weight, bias, tok = llama_factory_checkpoint(tmp_path / "rm")
    rm = load_reward_model(str(tmp_path / "rm"))
    assert rm.kind == "value_head" and "LLaMA-Factory" in rm.detected_because
    # LLaMA-Factory reads the value at the last real token (the end of the answer's template).
    expected = [float(last_hidden(backbone, tok, c) @ weight[0] + bias[0]) for c in CONVS]
    got = rm.score_detailed(CONVS)
    assert [s.score for s in got] == pytest.approx(expected, abs=1e-5)
    assert all(s.normalized is None for s in got)


def test_value_head_scores_ignore_padding_side_and_batch_size(tmp_path):
    openrlhf_checkpoint(tmp_path / "rm", shards=2)  # also reads a sharded checkpoint through its index
    rm = load_reward_model(str(tmp_path / "rm"))
    convs = CONVS * 2 + [[{"role": "user", "content": "x" * 40}, {"role": "assistant", "content": "y"}]]
    together = rm.score(convs)
    rm.pad_side = "right"
    right = rm.score(convs)
    rm.batch_tokens = 1  # one conversation per forward: no padding at all
    alone = rm.score(convs)
    assert right == pytest.approx(together, abs=1e-5)
    assert alone == pytest.approx(together, abs=1e-5)
    assert together[0] == pytest.approx(together[3], abs=1e-6)


def test_find_value_head_prefix(tmp_path):
    def folder(name, state, **config):
        path = tmp_path / name
        path.mkdir()
        save_file(state, path / "model.safetensors")
        (path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], **config}))
        return path

    embed = {"model.embed_tokens.weight": torch.zeros(4, 8)}
    assert find_value_head_prefix(folder("score", embed | {"score.weight": torch.zeros(1, 8)})) == "score"
    assert (
        find_value_head_prefix(folder("vh", embed | {"value_head.weight": torch.zeros(1, 8)})) == "value_head"
    )
    trl = embed | {"v_head.summary.weight": torch.zeros(1, 8), "v_head.summary.bias": torch.zeros(1)}
    assert find_value_head_prefix(folder("trl", trl)) == "v_head.summary"
    custom = embed | {"reward_head.weight": torch.zeros(1, 8)}
    assert find_value_head_prefix(folder("cfg", custom, value_head_prefix="reward_head")) == "reward_head"
    assert find_value_head_prefix(folder("lm", embed | {"lm_head.weight": torch.zeros(4, 8)})) is None
    assert find_value_head_prefix(folder("wide", embed | {"score.weight": torch.zeros(3, 8)})) is None


def test_value_head_bin_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"})
    )
    (tmp_path / "value_head.bin").write_bytes(b"not loaded")
    with pytest.raises(RewardkitError, match=r"value_head\.bin is a pickle.*value_head\.safetensors"):
        load_reward_model(str(tmp_path))


def test_value_head_kind_without_a_head_says_what_it_looked_for(tmp_path):
    save_file({"model.embed_tokens.weight": torch.zeros(4, 8)}, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(
        json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"})
    )
    with pytest.raises(RewardkitError, match="no value head found.*score, value_head"):
        load_reward_model(str(tmp_path), kind="value_head")


def test_value_head_with_misnamed_backbone_weights_is_refused(tmp_path):
    folder = tmp_path / "rm"
    openrlhf_checkpoint(folder)
    from safetensors.torch import load_file

    state = {
        k.replace("model.", "transformer.", 1): v for k, v in load_file(folder / "model.safetensors").items()
    }
    save_file(state, folder / "model.safetensors")
    with pytest.raises(RewardkitError, match="backbone's weights are missing"):
        load_reward_model(str(folder))


# --- remote code -------------------------------------------------------------------------------------

CONFIGURATION = """
from transformers import LlamaConfig


class TinyArmoConfig(LlamaConfig):
    model_type = "tinyarmo"
    num_objectives: int = 3
"""

MODELING = """
from dataclasses import dataclass

import torch
from torch import nn
from transformers import LlamaModel
from transformers.models.llama.modeling_llama import LlamaPreTrainedModel

from .configuration_tinyarmo import TinyArmoConfig


@dataclass
class TinyArmoOutput:
    score: torch.Tensor
    rewards: torch.Tensor


class TinyArmoForRewardModel(LlamaPreTrainedModel):
    config_class = TinyArmoConfig

    def __init__(self, config):
        super().__init__(config)
        self.model = LlamaModel(config)
        self.regression_layer = nn.Linear(config.hidden_size, config.num_objectives, bias=False)
        self.gating = nn.Linear(config.hidden_size, config.num_objectives)
        self.post_init()

    def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=False, **kwargs):
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                            use_cache=False).last_hidden_state
        last = attention_mask.sum(-1) - 1  # like ArmoRM: assumes right padding
        h = hidden[torch.arange(hidden.shape[0]), last]
        rewards = self.regression_layer(h)
        weights = torch.softmax(self.gating(h), dim=-1)
        return TinyArmoOutput(score=(rewards * weights).sum(-1, keepdim=True), rewards=rewards)
"""


def armo_checkpoint(folder, **config_fields):
    """A remote-code multi-objective RM: tiny Llama + regression layer + gating, via config auto_map."""
    from transformers import LlamaModel

    folder.mkdir()
    (folder / "configuration_tinyarmo.py").write_text(CONFIGURATION)
    (folder / "modeling_tinyarmo.py").write_text(MODELING)
    tok = make_char_tokenizer()
    config = tiny_llama_config(tok)
    torch.manual_seed(2)
    backbone = LlamaModel(config).eval()
    regression, gate_w, gate_b = torch.randn(3, 32) * 0.5, torch.randn(3, 32) * 0.5, torch.randn(3) * 0.1
    state = {f"model.{k}": v for k, v in backbone.state_dict().items()}
    state |= {"regression_layer.weight": regression, "gating.weight": gate_w, "gating.bias": gate_b}
    save_weights(folder, state)
    auto_map = {
        "AutoConfig": "configuration_tinyarmo.TinyArmoConfig",
        "AutoModelForSequenceClassification": "modeling_tinyarmo.TinyArmoForRewardModel",
    }
    write_config(
        folder,
        config,
        model_type="tinyarmo",
        architectures=["TinyArmoForRewardModel"],
        auto_map=auto_map,
        num_objectives=3,
        **config_fields,
    )
    tok.save_pretrained(folder)

    def by_hand(conv):
        h = last_hidden(backbone, tok, conv)
        rewards = regression @ h
        weights = torch.softmax(gate_w @ h + gate_b, dim=-1)
        return float((rewards * weights).sum()), rewards.tolist()

    return by_hand


def test_remote_code_refused_without_the_flag(tmp_path):
    folder = tmp_path / f"armo_refused_{tmp_path.name}"
    armo_checkpoint(folder)
    with pytest.raises(RewardkitError, match="--trust_remote_code") as error:
        load_reward_model(str(folder))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("names", [None, ["helpful", "honest", "safe"]])
def test_remote_code_scores_with_sub_scores(tmp_path, names):
    folder = tmp_path / f"armo_{tmp_path.name}"
    by_hand = armo_checkpoint(folder, **({"objective_names": names} if names else {}))
    rm = load_reward_model(str(folder), trust_remote_code=True)
    assert rm.kind == "remote_code"
    got = rm.score_detailed(CONVS)  # one padded batch
    keys = ["score", *(names or ["reward_0", "reward_1", "reward_2"])]
    for score, conv in zip(got, CONVS):
        expected, rewards = by_hand(conv)
        assert score.score == pytest.approx(expected, abs=1e-5)
        assert list(score.sub_scores) == keys
        assert [score.sub_scores[k] for k in keys] == pytest.approx([expected, *rewards], abs=1e-5)


# --- Python functions --------------------------------------------------------------------------------

SCORER = """
def by_length(conversations):
    return [float(len(conv[-1]["content"])) for conv in conversations]


def detailed(conversations):
    CALLS.append(len(conversations))
    return [{"score": len(c[-1]["content"]) / 10, "turns": len(c), "note": "ignored"} for c in conversations]


CALLS = []
NOT_CALLABLE = 3


def too_few(conversations):
    return [1.0]


def wrong_type(conversations):
    return ["high"] * len(conversations)


def not_a_list(conversations):
    return 1.0
"""


@pytest.fixture
def scorer_module(tmp_path, monkeypatch):
    name = f"rk_scorer_{abs(hash(str(tmp_path)))}"
    (tmp_path / f"{name}.py").write_text(SCORER)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_function_from_module_path(scorer_module):
    rm = load_reward_model(f"{scorer_module}:by_length")
    assert rm.kind == "function"
    assert rm.score(CONVS) == [1.0, 34.0, 8.0]
    assert rm.score_pairs(["Hi"], ["hello"], ["yo"]) == ([5.0], [2.0])
    assert rm.compare("Hi", ["a", "abc", "ab"]).ranking == [1, 2, 0]


def test_function_from_file_with_dicts_and_batches(tmp_path):
    (tmp_path / "my_scorer.py").write_text(SCORER)
    spec = f"{tmp_path / 'my_scorer.py'}:detailed"
    assert load_reward_model(spec).kind == "function"
    rm = load_function(spec, batch_size=2)
    got = rm.score_detailed(CONVS)
    assert [s.score for s in got] == pytest.approx([0.1, 3.4, 0.8])
    assert [s.sub_scores for s in got] == [{"turns": 2.0}, {"turns": 3.0}, {"turns": 4.0}]
    calls = rm.fn.__globals__["CALLS"]
    assert calls == [2, 1]


@pytest.mark.parametrize(
    "attr, message",
    [
        ("missing", "has no attribute 'missing'.*by_length"),
        ("NOT_CALLABLE", "'NOT_CALLABLE' is a int, not a function"),
    ],
)
def test_bad_attribute(scorer_module, attr, message):
    with pytest.raises(RewardkitError, match=message):
        load_reward_model(f"{scorer_module}:{attr}")


@pytest.mark.parametrize(
    "attr, message",
    [
        ("too_few", "returned 1 scores for 3 conversations"),
        ("wrong_type", "result 0 is 'high'; expected a number"),
        ("not_a_list", "returned a float; expected a list"),
    ],
)
def test_bad_return_names_the_spec(scorer_module, attr, message):
    rm = load_reward_model(f"{scorer_module}:{attr}")
    with pytest.raises(RewardkitError, match=message) as error:
        rm.score(CONVS)
    assert f"{scorer_module}:{attr}" in str(error.value)


def test_bad_specs(tmp_path):
    with pytest.raises(RewardkitError, match="no module named 'rk_no_such_module_xyz'"):
        load_reward_model("rk_no_such_module_xyz:score")
    with pytest.raises(RewardkitError, match="no such file"):
        load_reward_model(f"{tmp_path / 'absent.py'}:score")
    with pytest.raises(RewardkitError, match="module.path:function"):
        load_function("rk_module_only:")
    broken = tmp_path / "broken.py"
    broken.write_text(
        textwrap.dedent("""
        import rk_missing_dependency_xyz
    """)
    )
    with pytest.raises(RewardkitError, match="running .*broken.py' failed: ModuleNotFoundError"):
        load_reward_model(f"{broken}:score")
