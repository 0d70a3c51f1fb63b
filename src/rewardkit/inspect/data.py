"""`rewardkit inspect data`: the checks practitioners run by hand on preference files before training or eval.

Counts per file, format and subset; exact and near-duplicate pairs (and pairs whose answers are
flipped between two rows); pairs whose answers are identical or differ only in whitespace; prompts
shared between the training files and the eval files (leakage); answer-length statistics with the
"longer answer wins" and "shorter answer wins" baselines; and, with a tokenizer, how many pairs the
length policy of `data.tokenize.encode_pair` would trim (oldest turns) or drop at `--max_length`.
"""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from rewardkit.data.formats import SkipRow, detect_format, normalize_item
from rewardkit.data.loading import HubDataset, find_inputs, iter_rows
from rewardkit.data.schema import PreferencePair
from rewardkit.errors import RewardkitError

MAX_EXAMPLES = 5
_PUNCT = re.compile(r"[^\w\s]")


@dataclass
class Row:
    """One pair as the diagnostics see it (an N-way item gives one Row per chosen × rejected)."""

    pair: PreferencePair
    fmt: str


def read_rows(paths: Sequence[str]) -> tuple[list[Row], dict, Counter]:
    """Every pair of the files (nothing dropped: the diagnostics report what loaders would drop).

    Returns the rows, counts per (file, format), and rows skipped by the readers by reason.
    """
    rows, per_file, skipped = [], defaultdict(Counter), Counter()
    for item in find_inputs(list(paths)):
        if isinstance(item, HubDataset):
            raise RewardkitError(
                f"inspect data: {item.name}: give local files (a Hub dataset is not read here)"
            )
        for lineno, raw in iter_rows(item):
            source = f"{item}:{lineno}"
            fmt = detect_format(raw, source)
            per_file[str(item)][fmt] += 1
            try:
                it = normalize_item(raw, source=source, fmt=fmt)
            except SkipRow as skip:
                skipped[skip.reason] += 1
                continue
            for c in it.chosen:
                for r in it.rejected:
                    rows.append(Row(PreferencePair(it.prompt, c, r, it.system, None, it.subset, source), fmt))
    return rows, {f: dict(c) for f, c in per_file.items()}, skipped


def prompt_key(pair: PreferencePair) -> str:
    return json.dumps(
        [pair.system or ""] + [[m["role"], m["content"]] for m in pair.prompt], ensure_ascii=False
    )


def loose(text: str) -> str:
    """Text with case, punctuation and runs of whitespace ignored (for near-duplicates)."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def _loose_prompt(pair: PreferencePair) -> str:
    return loose(" ".join(m["content"] for m in pair.prompt_messages()))


def duplicates(rows: Sequence[Row]) -> dict:
    """Exact duplicates, near-duplicates (same after `loose`, not exact) and flipped pairs."""
    exact, near, first_exact, first_near = [], [], {}, {}
    seen_pairs: dict[tuple[str, str, str], str] = {}
    flipped = []
    for row in rows:
        p = row.pair
        key = (prompt_key(p), p.chosen, p.rejected)
        near_key = (_loose_prompt(p), loose(p.chosen), loose(p.rejected))
        if key in first_exact:
            exact.append([first_exact[key], p.source])
        elif near_key in first_near:
            near.append([first_near[near_key], p.source])
        first_exact.setdefault(key, p.source)
        first_near.setdefault(near_key, p.source)
        swapped = (key[0], p.rejected, p.chosen)
        if swapped in seen_pairs and p.chosen != p.rejected:
            flipped.append([seen_pairs[swapped], p.source])
        seen_pairs.setdefault(key, p.source)
    return {
        "exact": len(exact),
        "near": len(near),
        "flipped": len(flipped),
        "examples": {
            "exact": exact[:MAX_EXAMPLES],
            "near": near[:MAX_EXAMPLES],
            "flipped": flipped[:MAX_EXAMPLES],
        },
    }


def same_answers(rows: Sequence[Row]) -> dict:
    """Pairs whose answers are identical, or equal once whitespace is collapsed."""
    identical, whitespace = [], []
    for row in rows:
        c, r = row.pair.chosen, row.pair.rejected
        if c == r:
            identical.append(row.pair.source)
        elif " ".join(c.split()) == " ".join(r.split()):
            whitespace.append(row.pair.source)
    return {
        "identical": len(identical),
        "whitespace_only": len(whitespace),
        "examples": {"identical": identical[:MAX_EXAMPLES], "whitespace_only": whitespace[:MAX_EXAMPLES]},
    }


def leakage(train: Sequence[Row], evaluation: Sequence[Row]) -> dict:
    """Eval pairs whose prompt (exactly, or after `loose`) also appears in the training files."""
    exact_keys = {prompt_key(r.pair) for r in train}
    loose_keys = {_loose_prompt(r.pair) for r in train}
    exact = [r.pair.source for r in evaluation if prompt_key(r.pair) in exact_keys]
    near = [r.pair.source for r in evaluation if _loose_prompt(r.pair) in loose_keys]
    return {
        "eval_pairs": len(evaluation),
        "shared_prompts": len(exact),
        "shared_prompts_loose": len(near),
        "examples": exact[:MAX_EXAMPLES] or near[:MAX_EXAMPLES],
    }


def length_stats(chosen: Sequence[int], rejected: Sequence[int], unit: str) -> dict:
    """Answer lengths and the accuracy of "the longer (or shorter) answer wins" (a tie counts half)."""
    n = len(chosen)
    if not n:
        return {"unit": unit, "pairs": 0}
    longer = sum(c > r for c, r in zip(chosen, rejected))
    shorter = sum(c < r for c, r in zip(chosen, rejected))
    ties = n - longer - shorter

    def summary(values):
        return {"mean": statistics.fmean(values), "median": statistics.median(values), "max": max(values)}

    return {
        "unit": unit,
        "pairs": n,
        "chosen": summary(chosen),
        "rejected": summary(rejected),
        "longer_wins": (longer + ties / 2) / n,
        "shorter_wins": (shorter + ties / 2) / n,
        "ties": ties,
    }


def length_policy(tokenizer, rows: Sequence[Row], max_length: int) -> dict:
    """How many pairs `encode_pair` keeps whole, trims (oldest context turns) or drops at `max_length`."""
    from rewardkit.data.tokenize import encode_pair

    trimmed, dropped, turns = [], [], 0
    for row in rows:
        enc = encode_pair(tokenizer, row.pair, max_length)
        if enc is None:
            dropped.append(row.pair.source)
        elif enc.turns_trimmed:
            trimmed.append(row.pair.source)
            turns += enc.turns_trimmed
    return {
        "max_length": max_length,
        "kept_whole": len(rows) - len(trimmed) - len(dropped),
        "trimmed": len(trimmed),
        "turns_trimmed": turns,
        "dropped": len(dropped),
        "examples": {"trimmed": trimmed[:MAX_EXAMPLES], "dropped": dropped[:MAX_EXAMPLES]},
    }


def inspect_data(
    files: Sequence[str],
    eval_files: Sequence[str] = (),
    *,
    tokenizer=None,
    max_length: int | None = None,
) -> dict:
    """All the diagnostics, as one JSON-ready dict (see the module docstring).

    Args:
        files: the (training) preference files or folders.
        eval_files: eval files, checked for prompts shared with `files`, and diagnosed as well.
        tokenizer: with a chat template installed; lengths are then in tokens and the length policy runs.
        max_length: tokens per conversation for the length policy (needs `tokenizer`).
    """
    rows, per_file, skipped = read_rows(files)
    eval_rows, eval_per_file, eval_skipped = read_rows(eval_files) if eval_files else ([], {}, Counter())
    every = rows + eval_rows
    subsets = Counter(r.pair.subset or "(none)" for r in every)
    if tokenizer is not None:
        answers = [r.pair.chosen for r in every] + [r.pair.rejected for r in every]
        counts = (
            [len(ids) for ids in tokenizer(answers, add_special_tokens=False)["input_ids"]] if answers else []
        )
        chosen, rejected, unit = counts[: len(every)], counts[len(every) :], "tokens"
    else:
        chosen, rejected = [len(r.pair.chosen) for r in every], [len(r.pair.rejected) for r in every]
        unit = "characters"
    report = {
        "files": {**per_file, **eval_per_file},
        "pairs": len(rows),
        "eval_pairs": len(eval_rows),
        "skipped_by_readers": dict(skipped + eval_skipped),
        "formats": dict(Counter(r.fmt for r in every)),
        "subsets": dict(subsets),
        "duplicates": duplicates(every),
        "same_answers": same_answers(every),
        "lengths": length_stats(chosen, rejected, unit),
    }
    if eval_files:
        report["leakage"] = leakage(rows, eval_rows)
    if tokenizer is not None and max_length:
        report["length_policy"] = length_policy(tokenizer, every, max_length)
    return report


def to_markdown(report: dict) -> str:
    """The report as a short markdown page."""
    lines = ["# Preference data", "", "| file | format | rows |", "|---|---|---|"]
    for file, formats in report["files"].items():
        lines += [f"| {file} | {fmt} | {n} |" for fmt, n in formats.items()]
    lines += [
        "",
        f"{report['pairs']} pairs" + (f", {report['eval_pairs']} eval pairs" if report["eval_pairs"] else ""),
    ]
    if report["skipped_by_readers"]:
        lines.append(f"skipped by the readers: {report['skipped_by_readers']}")
    lines += ["", "| subset | pairs |", "|---|---|"] + [
        f"| {s} | {n} |" for s, n in report["subsets"].items()
    ]
    d, s = report["duplicates"], report["same_answers"]
    lines += [
        "",
        "## Problems",
        "",
        "| check | pairs | examples |",
        "|---|---|---|",
        f"| exact duplicates | {d['exact']} | {_ex(d['examples']['exact'])} |",
        f"| near-duplicates (case, punctuation, spacing) | {d['near']} | {_ex(d['examples']['near'])} |",
        f"| flipped (same answers, other order) | {d['flipped']} | {_ex(d['examples']['flipped'])} |",
        f"| identical answers | {s['identical']} | {_ex(s['examples']['identical'])} |",
        f"| answers differ only in whitespace | {s['whitespace_only']} | {_ex(s['examples']['whitespace_only'])} |",
    ]
    if "leakage" in report:
        leak = report["leakage"]
        lines.append(
            f"| eval prompts also in training (exact / loose) | {leak['shared_prompts']} / "
            f"{leak['shared_prompts_loose']} of {leak['eval_pairs']} | {_ex(leak['examples'])} |"
        )
    n = report["lengths"]
    if n["pairs"]:
        lines += [
            "",
            f"## Answer lengths ({n['unit']})",
            "",
            "| | mean | median | max |",
            "|---|---|---|---|",
            *(
                f"| {side} | {n[side]['mean']:.1f} | {n[side]['median']:.0f} | {n[side]['max']} |"
                for side in ("chosen", "rejected")
            ),
            "",
            f"Baselines: longer answer wins {n['longer_wins']:.1%}, shorter answer wins {n['shorter_wins']:.1%} "
            f"({n['ties']} ties counted half).",
        ]
    if "length_policy" in report:
        p = report["length_policy"]
        lines += [
            "",
            f"## Length policy at max_length={p['max_length']}",
            "",
            f"kept whole {p['kept_whole']}, context trimmed {p['trimmed']} ({p['turns_trimmed']} turns), "
            f"dropped {p['dropped']} (examples: {_ex(p['examples']['dropped'])})",
        ]
    return "\n".join(lines) + "\n"


def _ex(examples) -> str:
    return ", ".join(" = ".join(e) if isinstance(e, list) else e for e in examples[:3]) or "-"
