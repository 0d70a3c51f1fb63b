"""The SmolLM2 GGUF -> safetensors conversion the tests and benchmarks share: atomic, reused, repaired.

A tiny Llama folder stands in for the packaged GGUF (the real conversion is the `smollm2_dir` fixture's).
"""

import json

import pytest
import torch

import rewardkit.assets as assets


@pytest.fixture
def fake_gguf(tmp_path, monkeypatch, char_tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    source = tmp_path / "source"
    config = LlamaConfig(
        vocab_size=len(char_tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(source)
    char_tokenizer.save_pretrained(source)
    monkeypatch.setattr(assets, "smollm2_gguf", lambda: (source, None))
    return source


def leftovers(cache):
    return sorted(p.name for p in cache.iterdir() if p.name != assets.SMOLLM2_FOLDER)


def test_converts_once_then_reuses(tmp_path, fake_gguf, monkeypatch):
    from transformers import AutoModelForCausalLM

    cache = tmp_path / "cache"
    folder = assets.smollm2_safetensors(cache)
    assert folder == cache / assets.SMOLLM2_FOLDER and leftovers(cache) == []
    assert (folder / "model.safetensors").is_file() and "quantization_config" not in json.loads(
        (folder / "config.json").read_text()
    )
    a, b = AutoModelForCausalLM.from_pretrained(folder), AutoModelForCausalLM.from_pretrained(fake_gguf)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))

    def no_second_conversion(*a, **k):
        raise AssertionError("converted again")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", no_second_conversion)
    assert assets.smollm2_safetensors(cache) == folder


def test_a_failed_conversion_leaves_nothing_behind(tmp_path, fake_gguf, monkeypatch):
    from transformers import PreTrainedModel

    def crash(self, *a, **k):
        raise KeyboardInterrupt  # as a Ctrl-C in the middle of writing the weights

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", crash)
    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        assets.smollm2_safetensors(cache)
    assert list(cache.iterdir()) == []  # neither the target nor the temporary folder


def test_an_incomplete_folder_from_an_older_writer_is_replaced(tmp_path, fake_gguf):
    target = tmp_path / "cache" / assets.SMOLLM2_FOLDER
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")  # weights never written
    assert assets.smollm2_safetensors(tmp_path / "cache") == target
    assert (target / "model.safetensors").is_file() and leftovers(tmp_path / "cache") == []
