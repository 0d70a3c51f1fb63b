"""From the data arguments to tokenized train/validation sets, with a report of what was dropped."""

from __future__ import annotations

import logging

from tqdm.auto import tqdm

from rewardkit.data.dataset_info import read_entries
from rewardkit.data.loading import DropReport, load_pairs, split_pairs
from rewardkit.data.schema import PreferencePair
from rewardkit.data.tokenize import common_prefix_len, encode_pair
from rewardkit.errors import RewardkitError

logger = logging.getLogger(__name__)


def read_splits(
    *,
    dataset_name: str | None,
    train_file_dir: str | None,
    validation_file_dir: str | None,
    validation_split_percentage: float,
    validation_split: str = "shuffle",
    max_train_samples: int | None,
    max_eval_samples: int | None,
    seed: int,
    dataset_info: str | None = None,
    dataset: str | None = None,
) -> tuple[list[PreferencePair], list[PreferencePair], DropReport]:
    """Train and validation pairs (validation split off the training data when no files are given).

    `dataset_info` + `dataset`: LLaMA-Factory's dataset_info.json and entry names, read with their
    column mappings (`data.dataset_info`) and added to the training pairs.
    """
    train, report = (
        load_pairs(train_file_dir or dataset_name) if (train_file_dir or dataset_name) else ([], DropReport())
    )
    if dataset_info:
        for spec, pairs, spec_report in read_entries(dataset_info, dataset or "", load_pairs):
            logger.info(
                "--dataset %s: %d pairs from %s (%s)", spec.name, len(pairs), spec.path, spec_report.summary()
            )
            train += pairs
            report.merge(spec_report)
    if validation_file_dir:
        validation, eval_report = load_pairs(validation_file_dir)
        report.merge(eval_report)
    else:
        train, validation = split_pairs(train, validation_split_percentage, seed, validation_split)
    if max_train_samples is not None and max_train_samples > 0:
        train = train[:max_train_samples]
    if max_eval_samples is not None and max_eval_samples > 0:
        validation = validation[:max_eval_samples]
    return train, validation, report


def tokenize_pairs(tokenizer, pairs: list[PreferencePair], max_length: int, report: DropReport, desc: str):
    """A `datasets.Dataset` of token ids (each pair tokenized once), dropping pairs that cannot fit."""
    from datasets import Dataset

    rows = []
    for pair in tqdm(pairs, desc=desc, unit="pair", mininterval=1.0):
        enc = encode_pair(tokenizer, pair, max_length)
        if enc is None:
            report.add("too_long", pair.source)
            continue
        if enc.chosen_ids == enc.rejected_ids:
            report.add("identical_tokens", pair.source)
            continue
        rows.append(
            {
                "input_ids_chosen": enc.chosen_ids,
                "input_ids_rejected": enc.rejected_ids,
                "prompt_length": common_prefix_len(enc.chosen_ids, enc.rejected_ids),
                "length": len(enc.chosen_ids) + len(enc.rejected_ids),
                "margin": enc.margin,
                "turns_trimmed": enc.turns_trimmed,
                "source": enc.source,
            }
        )
    if not rows and pairs:
        raise RewardkitError(f"{desc}: every pair was dropped ({report.summary()}); raise --max_length?")
    trimmed = sum(r["turns_trimmed"] > 0 for r in rows)
    if trimmed:
        logger.info(
            "%s: %d pairs had their oldest context turns trimmed to fit %d tokens", desc, trimmed, max_length
        )
    return Dataset.from_list(rows) if rows else None
