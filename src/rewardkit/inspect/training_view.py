"""What training saw of a row: the pair tokenized as `rewardkit train` does under a training config file.

The config is parsed by the same dataclasses as `rewardkit train --config FILE.yaml`; the tokenizer
and chat template are set up as `train.run.run_train` sets them up, and the pair is tokenized with
`data.tokenize.encode_pair` at the config's max_length. No model weights are loaded.
"""

from __future__ import annotations

from rewardkit.data.schema import PreferencePair
from rewardkit.errors import RewardkitError, first_line


def _read_config(config_file: str) -> dict:
    """A YAML/JSON train config's {option: value} mapping."""
    import json
    from pathlib import Path

    import yaml

    path = Path(config_file)
    if not path.is_file():
        raise RewardkitError(f"--train_config {config_file}: no such file")
    try:
        data = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise RewardkitError(f"--train_config {config_file}: not valid YAML/JSON ({first_line(e)})") from e
    if not isinstance(data, dict):
        raise RewardkitError(f"--train_config {config_file}: expected a mapping of option names to values")
    return {str(k).lstrip("-").replace("-", "_"): v for k, v in data.items()}


def training_tokenizer(config_file: str):
    """(tokenizer with the training chat template, max_length, description) from a train config file.

    The tokenizer settings are read into `rewardkit train`'s own dataclasses (ModelArguments,
    DataArguments, ScriptArguments), so defaults and validation are training's; other options are ignored.
    """
    from dataclasses import fields

    from rewardkit.config import DataArguments, ModelArguments, ScriptArguments
    from rewardkit.core.loading import load_tokenizer
    from rewardkit.data.tokenize import install_chat_template

    data = _read_config(config_file)

    def build(cls, **extra):
        return cls(**{**extra, **{f.name: data[f.name] for f in fields(cls) if f.name in data}})

    try:
        model_args = build(ModelArguments)
        data_args = build(DataArguments, train_file_dir="unused")  # files are not read here
        script_args = build(ScriptArguments)
    except (RewardkitError, TypeError) as e:
        raise RewardkitError(f"--train_config {config_file}: {first_line(e)}") from e
    tokenizer = load_tokenizer(
        model_args.tokenizer_name_or_path or model_args.model_name_or_path,
        gguf_file=None if model_args.tokenizer_name_or_path else model_args.gguf_file,
        use_fast=model_args.use_fast_tokenizer,
        flag="--train_config model_name_or_path",
    )
    described = install_chat_template(tokenizer, script_args.template_name)
    return tokenizer, data_args.full_max_length, described


def training_view(tokenizer, pair: PreferencePair, max_length: int) -> dict:
    """The chosen and rejected conversations as training tokenizes them (or why the pair is dropped)."""
    from rewardkit.data.tokenize import encode_pair
    from rewardkit.inspect.view import bos_count

    enc = encode_pair(tokenizer, pair, max_length)
    if enc is None:
        return {"dropped": f"too long for max_length={max_length} even with every old turn trimmed"}
    out = {"turns_trimmed": enc.turns_trimmed, "max_length": max_length}
    for side, ids in (("chosen", enc.chosen_ids), ("rejected", enc.rejected_ids)):
        leading, total = bos_count(tokenizer, ids)
        out[side] = {"ids": ids, "num_tokens": len(ids), "bos_leading": leading, "bos_total": total}
    return out


def compare_ids(tokenizer, scoring_ids: list[int], training_ids: list[int]) -> str | None:
    """None when the two token lists are equal, else where and how they first differ."""
    if scoring_ids == training_ids:
        return None
    i = 0
    while i < min(len(scoring_ids), len(training_ids)) and scoring_ids[i] == training_ids[i]:
        i += 1

    def at(ids):
        return repr(tokenizer.convert_ids_to_tokens(ids[i : i + 5])) if i < len(ids) else "(end)"

    return (
        f"differ at token {i}: scoring {at(scoring_ids)} vs training {at(training_ids)} "
        f"({len(scoring_ids)} vs {len(training_ids)} tokens)"
    )
