"""PRM training batches: step-labelled solutions tokenized once, then padded rows or packed rows.

Padded (`StepCollator`): one solution per row, right-padded, the layout TRL's last PRMTrainer used.
Packed (`PackedStepCollator`, decoders where `supports_packing`): several solutions per row with no
padding between them, each in its own block of the block-diagonal mask with positions restarting,
so every step score and gradient equals the padded layout's (tests/unit/test_prm.py checks 1e-5).

Both give `label_index`, the flat index (row * width + column) of every labelled separator token,
and `labels` (P(good) targets, NaN where a step is unlabelled), `example_ids`, `step_index`; and,
when the rows carry contrast partners (`--step_contrast_weight`), `contrast_index`: (good, bad) flat
step indices of the contrast pairs whose two solutions are both in the batch.

Contrast pairs: two solutions of the same prompt whose steps are the same text up to a step k that
one labels good and the other bad (a wrong solution and its correct twin, or two Math-Shepherd
completions that part at k). The bad one's row lists its good partners (`contrast_good`) and the
step (`contrast_step`); `PromptGroupSampler` keeps a prompt's solutions next to each other so that
partners share batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rewardkit.core.packing import PAD
from rewardkit.data.loading import DropReport
from rewardkit.data.step_encoding import encode_steps
from rewardkit.data.steps import StepExample


def tokenize_step_examples(
    tokenizer,
    examples: list[StepExample],
    separator_id: int,
    max_length: int,
    report: DropReport,
    *,
    last_step_only: bool = False,
    contrast: bool = False,
):
    """(`datasets.Dataset` of input_ids, step_positions, step_labels, example_id; solutions cut short).

    Solutions whose first step does not fit are dropped ("too_long" in `report`); trailing steps
    that do not fit are left out with their labels (the solution is kept and counted as cut short). With `last_step_only`
    only each solution's last kept step is labelled (TRL's `train_on_last_step_only`). With `contrast`
    the rows also carry their prompt group and contrast partners (`contrast_partners`).
    """
    from datasets import Dataset

    cut = 0
    rows = {"input_ids": [], "step_positions": [], "step_labels": [], "example_id": []}
    if contrast:
        rows.update(group=[], contrast_good=[], contrast_step=[])
        groups, partners = contrast_partners(examples)
    for i, ex in enumerate(examples):
        enc = encode_steps(tokenizer, ex.prompt_messages(), ex.steps, separator_id, max_length)
        if enc is None:
            report.add("too_long", ex.source)
            continue
        cut += enc.truncated
        labels = [math.nan if v is None else float(v) for v in ex.labels[: enc.num_steps]]
        if last_step_only:
            labels = [math.nan] * (len(labels) - 1) + labels[-1:]
        rows["input_ids"].append(enc.input_ids)
        rows["step_positions"].append(enc.step_positions)
        rows["step_labels"].append(labels)
        rows["example_id"].append(i)
        if contrast:
            rows["group"].append(groups[i])
            rows["contrast_good"].append([j for j, _ in partners[i]])
            rows["contrast_step"].append([k for _, k in partners[i]])
    return Dataset.from_dict(rows), cut


def contrast_partners(examples: list[StepExample]) -> tuple[list[int], list[list[tuple[int, int]]]]:
    """(prompt group id per example, [(good partner, step k)] per example where it is the bad side).

    Example:
        >>> p = [{"role": "user", "content": "q"}]
        >>> good = StepExample(p, ["a", "b", "c"], [1.0, 1.0, 1.0])
        >>> bad = StepExample(p, ["a", "x", "y"], [1.0, 0.0, 0.0])
        >>> other = StepExample([{"role": "user", "content": "r"}], ["a", "x"], [1.0, 1.0])
        >>> contrast_partners([good, bad, other])
        ([0, 0, 1], [[], [(0, 1)], []])
    """
    import json

    keys: dict[str, int] = {}
    groups = [keys.setdefault(json.dumps(ex.prompt_messages(), sort_keys=True), len(keys)) for ex in examples]
    partners: list[list[tuple[int, int]]] = [[] for _ in examples]
    for idx in group_members(groups).values():
        for a in idx:
            for b in idx:
                k = _parting_step(examples[a], examples[b])
                if k is not None:
                    partners[b].append((a, k))
    return groups, partners


def group_members(groups: list[int]) -> dict[int, list[int]]:
    """{group id: indices with that id, in order}, groups in order of first appearance."""
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    return members


def _parting_step(good: StepExample, bad: StepExample) -> int | None:
    """The step k where `bad` is first labelled bad, if `good` has the same steps before k and a good step k."""
    k = next((j for j, v in enumerate(bad.labels) if v is not None and v < 0.5), None)
    if k is None or k >= len(good.steps) or good.steps[:k] != bad.steps[:k]:
        return None
    label = good.labels[k]
    return k if label is not None and label >= 0.5 else None


class PromptGroupSampler(torch.utils.data.Sampler):
    """Every solution once per epoch, the prompts in a seeded random order and each prompt's solutions
    together, so that contrast partners share a batch (but where a batch boundary cuts a prompt).

    Example:
        >>> sorted(PromptGroupSampler([0, 1, 0, 1], seed=0))
        [0, 1, 2, 3]
    """

    def __init__(self, groups: list[int], seed: int):
        self.members = group_members(groups)
        self.generator = torch.Generator().manual_seed(seed)
        self.n = len(groups)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        order = list(self.members)
        for g in torch.randperm(len(order), generator=self.generator).tolist():
            yield from self.members[order[g]]


def _step_fields(features: list[dict], offsets: list[int]) -> dict:
    """label_index / labels / example_ids / step_index of every step, solutions in feature order."""
    index, labels, ids, steps = [], [], [], []
    flat: dict[tuple[int, int], int] = {}  # (example id, step) -> position in the flat step arrays
    for f, offset in zip(features, offsets):
        for j, (pos, label) in enumerate(zip(f["step_positions"], f["step_labels"])):
            flat[(f.get("example_id", 0), j)] = len(index)
            index.append(offset + pos)
            labels.append(math.nan if label is None else label)
            ids.append(f.get("example_id", 0))
            steps.append(j)
    out = {
        "label_index": torch.tensor(index, dtype=torch.long),
        "labels": torch.tensor(labels, dtype=torch.float32),
        "example_ids": torch.tensor(ids, dtype=torch.long),
        "step_index": torch.tensor(steps, dtype=torch.long),
        "return_loss": True,
    }
    if features and "contrast_good" in features[0]:
        pairs = [
            (flat[(partner, k)], flat[(f["example_id"], k)])
            for f in features
            for partner, k in zip(f["contrast_good"], f["contrast_step"])
            if (partner, k) in flat and (f["example_id"], k) in flat
        ]
        out["contrast_index"] = torch.tensor(pairs, dtype=torch.long).reshape(-1, 2)
    return out


@dataclass
class StepCollator:
    """One solution per row, right-padded: input_ids, attention_mask and the step fields."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, features: list[dict]) -> dict:
        from rewardkit.core.batching import pad_rows

        ids, mask = pad_rows(
            [f["input_ids"] for f in features], self.pad_token_id, "right", self.pad_to_multiple_of
        )
        width = ids.shape[1]
        return {
            "input_ids": ids,
            "attention_mask": mask,
            **_step_fields(features, [r * width for r in range(len(features))]),
        }


@dataclass
class PackedStepCollator:
    """Several solutions per row (first-fit decreasing, at most `max_row_tokens` per row), padding at
    the end of rows only: input_ids, position_ids, block_ids (solution index in the batch, -1 on
    padding) and the step fields.

    Example:
        >>> c = PackedStepCollator(pad_token_id=0, max_row_tokens=8)
        >>> b = c([{"input_ids": [5, 6, 9], "step_positions": [2], "step_labels": [1.0]},
        ...        {"input_ids": [7, 9], "step_positions": [1], "step_labels": [0.0]}])
        >>> b["input_ids"].tolist(), b["position_ids"].tolist(), b["block_ids"].tolist(), b["label_index"].tolist()
        ([[5, 6, 9, 7, 9]], [[0, 1, 2, 0, 1]], [[0, 0, 0, 1, 1]], [2, 4])
    """

    pad_token_id: int
    max_row_tokens: int = 4096
    pad_to_multiple_of: int | None = None

    def __call__(self, features: list[dict]) -> dict:
        rows = first_fit([len(f["input_ids"]) for f in features], self.max_row_tokens)
        width = max(sum(len(features[i]["input_ids"]) for i in row) for row in rows)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        position_ids = torch.zeros((len(rows), width), dtype=torch.long)
        block_ids = torch.full((len(rows), width), PAD, dtype=torch.long)
        offsets = [0] * len(features)
        for r, row in enumerate(rows):
            start = 0
            for i in row:
                n = len(features[i]["input_ids"])
                input_ids[r, start : start + n] = torch.tensor(features[i]["input_ids"])
                position_ids[r, start : start + n] = torch.arange(n)
                block_ids[r, start : start + n] = i
                offsets[i] = r * width + start
                start += n
        return {
            "input_ids": input_ids,
            "position_ids": position_ids,
            "block_ids": block_ids,
            **_step_fields(features, offsets),
        }


def first_fit(lengths: list[int], max_row_tokens: int) -> list[list[int]]:
    """First-fit decreasing: indices per row (a solution longer than the limit gets a row alone).

    Example:
        >>> first_fit([5, 3, 4, 2], 8)
        [[0, 1], [2, 3]]
    """
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for r in range(len(rows)):
            if lengths[i] <= room[r]:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(max_row_tokens - lengths[i])
    return rows
