"""Shared fixtures: tiny in-process models, and the two packaged real models (cached once per machine)."""

from __future__ import annotations

import os
from pathlib import Path

# Tests never touch the network: set before transformers/datasets are imported.
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HH_DEV = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless" / "dev.jsonl"
CACHE = Path(os.environ.get("REWARDKIT_TEST_CACHE", ROOT / ".cache" / "test-models"))

CHARS = [chr(c) for c in range(32, 127)] + ["\n", "’", "÷"]
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<|user|>", "<|assistant|>", "<|system|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def make_char_tokenizer(add_bos: bool = True, chat_template: str | None = CHAT_TEMPLATE, pad: bool = True):
    """A character-level fast tokenizer that (optionally) adds <s> in front of every encoding, like Llama's."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS + CHARS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tok.add_special_tokens(SPECIALS)
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", 1)]
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>" if pad else None,
    )
    if chat_template:
        fast.chat_template = chat_template
    return fast


def write_synthetic_pairs(path: Path, n: int, seed: int = 0) -> Path:
    """`n` pairs of the demo's synthetic set as TRL rows (prompt, chosen, rejected strings) in a JSONL file."""
    import json

    from rewardkit.demo.synthetic import make_preference_set

    with Path(path).open("w") as f:
        for p in make_preference_set(n, seed=seed):
            f.write(
                json.dumps({"prompt": p.prompt[-1]["content"], "chosen": p.chosen, "rejected": p.rejected})
                + "\n"
            )
    return Path(path)


def make_tiny_llama(tokenizer, seed: int = 0, num_labels: int = 1):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        num_labels=num_labels,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForSequenceClassification(cfg).eval()
    torch.nn.init.normal_(model.score.weight, std=0.5)
    return model


def record_sdpa_calls(monkeypatch) -> list[tuple[int, bool, bool]]:
    """Patch torch's sdpa to record (key width, explicit mask given, is_causal) of every call."""
    calls, real = [], torch.nn.functional.scaled_dot_product_attention

    def spy(query, key, value, attn_mask=None, is_causal=False, **kwargs):
        calls.append((key.shape[2], attn_mask is not None, is_causal))
        return real(query, key, value, attn_mask=attn_mask, is_causal=is_causal, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    return calls


def make_tiny_bert(tokenizer, seed: int = 0):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=2048,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    return BertForSequenceClassification(cfg).eval()


@pytest.fixture
def char_tokenizer():
    return make_char_tokenizer()


@pytest.fixture
def tiny_llama_dir(tmp_path, char_tokenizer):
    """A saved tiny Llama sequence classifier + its tokenizer (with chat template), as a folder."""
    out = tmp_path / "tiny-llama"
    make_tiny_llama(char_tokenizer).save_pretrained(out)
    char_tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def minilm_dir():
    from rewardkit.assets import minilm_dir as find

    return find()


@pytest.fixture(scope="session")
def smollm2_dir():
    """SmolLM2-135M-Instruct converted once from GGUF to a safetensors causal-LM folder (~40 s the first time)."""
    from rewardkit.assets import smollm2_safetensors

    return smollm2_safetensors(CACHE)


def skip_or_fail(reason: str):
    """Skip on a developer's machine; fail in CI (CI=true), where a missing install must not hide a claim."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (a skip in CI would hide what this test checks)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require(module: str):
    """`pytest.importorskip` that fails instead of skipping in CI."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        skip_or_fail(f"{module} is not installed ({err})")


@pytest.fixture(scope="session")
def hh_dev():
    if not HH_DEV.is_file():
        skip_or_fail(f"{HH_DEV} not found (../shared beside the checkout)")
    return HH_DEV
