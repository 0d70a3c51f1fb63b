"""The flow of `rewardkit eval`: check the input, score every answer, compute the metrics, write the report.

All input checks run before the model scores anything, and all files are written into a
temporary folder that is moved into `output_dir` at the end, so bad input never leaves a
half-written `output_dir`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rewardkit.data.schema import NWayItem
from rewardkit.errors import RewardkitError
from rewardkit.eval import metrics as M
from rewardkit.eval import rewardbench as RB
from rewardkit.eval.robust import robust_summaries
from rewardkit.scorers.base import Group, RewardModel

log = logging.getLogger(__name__)

NO_SUBSET = "(no subset)"  # the subset name of items whose data row named none


def run_eval(
    model: RewardModel,
    items: Sequence[NWayItem],
    *,
    output_dir: str | Path,
    sections_file: str | Path | None = None,
    baseline_scores: str | Path | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    drop_report: Any = None,
    model_name: str | None = None,
    batch_size: int = 32,
    near_tie_rel: float = 1e-3,
    n_bins: int = 10,
    progress: bool = True,
    stress: bool = False,
    calibrated: bool = False,
) -> dict:
    """Evaluate `model` on `items` and write results.json, report.md and plots into `output_dir`.

    Args:
        model: any `RewardModel`; only `score_detailed` (and `kind`) is used.
        items: the eval items (`rewardkit.data.loading.load_eval_items` reads them from files).
        output_dir: created if absent; files of an earlier run there are replaced, others left alone.
        sections_file: YAML/JSON mapping section -> list of subsets, or -> {subset: weight}.
        baseline_scores: results.json of an earlier eval on the same data; items are matched by
            `source` and compared with a paired bootstrap.
        n_boot: bootstrap resamples for every confidence interval (0: no intervals).
        seed: seed of the bootstrap's numpy Generator.
        drop_report: the loader's DropReport (`.counts`, `.summary()`), reported as given.
        model_name: the name shown in the report (default: `model.kind`).
        batch_size: conversations per `score_detailed` call.
        near_tie_rel: a near tie is |margin| < near_tie_rel * (std of all scores in the run).
        n_bins: equal-width calibration bins on [0.5, 1].
        progress: show a tqdm progress bar while scoring.
        stress: re-score the pairs with the perturbations of `eval.stress` (summary["stress"]).
        calibrated: add the ECE of sigmoid(margin / T), T the model's `temperature` from `rewardkit
            train --calibrate` (summary["calibrated"]). Head ensembles always get summary["ensemble"].

    Returns:
        The content of results.json: {"model", "settings", "summary", "items", ...}.

    Raises:
        RewardkitError: bad input (no items, an item without chosen or rejected answers, a
            section file naming subsets the data lacks, an unusable baseline), before any scoring.
    """
    from rewardkit.eval.report import load_baseline, write_outputs

    _check_settings(n_boot=n_boot, batch_size=batch_size, n_bins=n_bins, near_tie_rel=near_tie_rel)
    _check_items(items)
    subsets = [it.subset or NO_SUBSET for it in items]
    sections, warnings = _sections(sections_file, subsets)
    baseline = (
        None if baseline_scores is None else load_baseline(baseline_scores, [it.source for it in items])
    )
    output_dir = _check_output_dir(output_dir)
    if calibrated and getattr(model, "temperature", None) is None:
        raise RewardkitError(
            "--calibrated: the model has no reward_temperature in its config.json (train it with --calibrate)"
        )

    records, length_unit = score_items(model, items, subsets, batch_size=batch_size, progress=progress)
    summary = summarize(
        records,
        sections=sections,
        baseline=baseline,
        n_boot=n_boot,
        seed=seed,
        near_tie_rel=near_tie_rel,
        n_bins=n_bins,
        length_unit=length_unit,
        dropped=_drop_report_dict(drop_report),
        warnings=warnings,
    )
    summary.update(
        robust_summaries(
            model,
            items,
            records,
            score=lambda its, subs: score_items(model, its, subs, batch_size=batch_size, progress=progress)[
                0
            ],
            stress=stress,
            calibrated=calibrated,
            n_boot=n_boot,
            seed=seed,
            n_bins=n_bins,
            baseline_scores=baseline_scores,
        )
    )
    results = {
        "format": "rewardkit-eval/1",
        "model": model_name or getattr(model, "kind", "model"),
        "model_kind": getattr(model, "kind", None),
        "settings": {
            "n_boot": n_boot,
            "seed": seed,
            "batch_size": batch_size,
            "near_tie_rel": near_tie_rel,
            "n_bins": n_bins,
            "length_unit": length_unit,
            "sections_file": None if sections_file is None else str(sections_file),
            "baseline_scores": None if baseline_scores is None else str(baseline_scores),
            "stress": stress,
            "calibrated": calibrated,
        },
        "summary": summary,
        "items": [r.as_row() for r in records],
    }
    write_outputs(results, output_dir)
    return results


def run_eval_files(
    model: RewardModel,
    data_paths: Sequence[str | Path],
    *,
    dataset_info: str | None = None,
    dataset: str | None = None,
    **kwargs: Any,
) -> dict:
    """`run_eval` on items read from files with `rewardkit.data.loading.load_eval_items`, plus the
    entries `dataset` (comma-separated) of a LLaMA-Factory `dataset_info` file, read with their column
    mappings; an entry's items without a subset of their own are reported under the entry's name."""
    from rewardkit.data.dataset_info import read_entries
    from rewardkit.data.loading import load_eval_items

    if data_paths:
        items, drop_report = load_eval_items([str(p) for p in data_paths])
    else:  # only --dataset_info entries
        from rewardkit.data.loading import DropReport

        items, drop_report = [], DropReport(noun="items")
    for spec, more, report in (
        read_entries(dataset_info, dataset or "", load_eval_items) if dataset_info else []
    ):
        items += [it if it.subset else dataclasses.replace(it, subset=spec.name) for it in more]
        drop_report.merge(report)
    return run_eval(model, items, drop_report=drop_report, **kwargs)


# ------------------------------------------------------------------------------------ input checks


def _check_output_dir(output_dir: str | Path) -> Path:
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise RewardkitError(f"--output_dir {output_dir}: exists and is not a folder")
    return output_dir


def _sections(sections_file: str | Path | None, subsets: list[str]) -> tuple[dict | None, list[str]]:
    """The sections to report (None: none asked for) and the warnings about them, logged here."""
    if sections_file is None:
        return None, []
    sections, warnings = load_sections(sections_file), []
    if _missing_rule(sections_file) == "skip":  # RewardBench's section files: absent subsets left out
        sections, warnings = RB.skip_missing(sections, set(subsets))
        if not sections:
            raise RewardkitError(f"--sections {sections_file}: none of its subsets are in the data")
    warnings += check_sections_against_data(sections, subsets, sections_file)
    for w in warnings:
        log.warning(w)
    return sections, warnings


def _check_settings(*, n_boot: int, batch_size: int, n_bins: int, near_tie_rel: float) -> None:
    if n_boot < 0:
        raise RewardkitError(f"--n_boot must be >= 0 (0 turns confidence intervals off), got {n_boot}")
    if batch_size < 1:
        raise RewardkitError(f"--batch_size must be >= 1, got {batch_size}")
    if n_bins < 1:
        raise RewardkitError(f"n_bins must be >= 1, got {n_bins}")
    if not near_tie_rel >= 0:
        raise RewardkitError(f"near_tie_rel must be >= 0, got {near_tie_rel}")


def _check_items(items: Sequence[NWayItem]) -> None:
    if not items:
        raise RewardkitError(
            "no items to evaluate: the data gave 0 usable rows (see the loader's drop report)"
        )
    for i, it in enumerate(items):
        where = it.source or f"item #{i}"
        if not it.chosen:
            raise RewardkitError(
                f"{where}: item has no chosen answer; eval needs at least one chosen and one rejected"
            )
        if not it.rejected:
            raise RewardkitError(
                f"{where}: item has chosen answers but no rejected answer; eval needs at least one of each"
            )


def load_sections(path: str | Path) -> dict[str, dict[str, float | None]]:
    """Read a section file: section -> [subset, ...] (weights = example counts) or -> {subset: weight}.

    Returns:
        section -> {subset: weight, or None for "its number of examples"}, in file order.

    Example:
        >>> import tempfile, os
        >>> f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
        >>> _ = f.write("Chat: [a, b]\\nMath: {c: 2, d: 1}\\n"); f.close()
        >>> load_sections(f.name)
        {'Chat': {'a': None, 'b': None}, 'Math': {'c': 2.0, 'd': 1.0}}
        >>> os.unlink(f.name)
    """
    import yaml

    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise RewardkitError(f"--sections {p}: cannot read it ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise RewardkitError(f"--sections {p}: not valid YAML/JSON ({str(e).splitlines()[0]})") from None
    accepted = "a mapping of section name -> list of subsets, or -> {subset: positive weight}"
    if isinstance(raw, dict):
        if RB.missing_subsets_rule(raw) == "invalid":
            raise RewardkitError(f"--sections {p}: missing_subsets must be error or skip")
        raw = {k: v for k, v in raw.items() if k != "missing_subsets"}
    if not isinstance(raw, dict) or not raw:
        raise RewardkitError(f"--sections {p}: expected {accepted}")
    sections: dict[str, dict[str, float | None]] = {}
    owner: dict[str, str] = {}
    for name, subs in raw.items():
        where = f"--sections {p}: section '{name}'"
        if isinstance(subs, list):
            if not all(isinstance(sub, str) for sub in subs):
                raise RewardkitError(f"{where}: subset names must be strings, got {subs!r}")
            entries: dict[str, float | None] = dict.fromkeys(subs)
            if len(entries) != len(subs):
                raise RewardkitError(f"{where}: a subset is listed twice")
        elif isinstance(subs, dict):
            entries = dict(subs)
            for sub, w in entries.items():
                if isinstance(w, bool) or not isinstance(w, int | float) or not (math.isfinite(w) and w > 0):
                    raise RewardkitError(
                        f"{where}: subset '{sub}' has weight {w!r}; weights must be positive numbers"
                    )
                entries[sub] = float(w)
        else:
            raise RewardkitError(f"{where}: expected a list of subsets or {{subset: weight}}, got {subs!r}")
        if not entries:
            raise RewardkitError(f"{where}: lists no subsets")
        for sub in entries:
            if not isinstance(sub, str):
                raise RewardkitError(f"{where}: subset names must be strings, got {sub!r}")
            if sub in owner:
                raise RewardkitError(f"{where}: subset '{sub}' is also in section '{owner[sub]}'")
            owner[sub] = str(name)
        sections[str(name)] = entries
    return sections


def _missing_rule(path: str | Path) -> str:
    import yaml

    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return RB.missing_subsets_rule(raw) if isinstance(raw, dict) else "error"


def check_sections_against_data(
    sections: dict[str, dict[str, float | None]], subsets: Sequence[str], path: str | Path
) -> list[str]:
    """Raise for subsets the section file lists but the data lacks; return warnings for unlisted ones."""
    import difflib

    missing, unused = M.check_sections(sections, sorted(set(subsets)))
    present = sorted(set(subsets))
    if missing:
        parts = []
        for sec, sub in missing:
            close = difflib.get_close_matches(sub, present, n=1)
            parts.append(f"'{sub}' (section {sec}" + (f"; did you mean '{close[0]}'?)" if close else ")"))
        raise RewardkitError(
            f"--sections {path}: lists subsets the data does not have: {', '.join(parts)}; "
            f"the data has: {', '.join(present)}"
        )
    if unused:
        return [
            f"--sections {path}: data subsets in no section (in the subset table, not in section "
            f"scores): {', '.join(unused)}"
        ]
    return []


# ------------------------------------------------------------------------------------------ scoring


def score_items(
    model: RewardModel, items: Sequence[NWayItem], subsets: Sequence[str], *, batch_size: int, progress: bool
) -> tuple[list[M.ItemScores], str]:
    """Score every (prompt + one answer) conversation in batches.

    Returns:
        (one `ItemScores` per item, the length unit of the answers: "answer tokens" when the model
        exposes its tokenizer (each answer's own tokens, no special tokens), else "tokens" when it
        reported `num_tokens` for every conversation (the whole conversation, prompt included: the
        prompt cancels inside an item, not across items), else "characters").
    """
    from tqdm.auto import tqdm

    from rewardkit.core.batching import fill_in_order

    groups = [Group(it.prompt_messages(), [*it.chosen, *it.rejected]) for it in items]
    scores = []
    with tqdm(
        total=sum(len(g.answers) for g in groups), desc="scoring", unit="conv", disable=not progress
    ) as bar:
        # whole items (all answers to one prompt) per call, about batch_size conversations each
        for chunk in fill_in_order([len(g.answers) for g in groups], batch_size):
            part = [groups[i] for i in chunk]
            out = [s for scored in model.score_groups(part) for s in scored]
            if len(out) != sum(len(g.answers) for g in part):
                raise RewardkitError(
                    f"the model returned {len(out)} scores for {sum(len(g.answers) for g in part)} "
                    "conversations"
                )
            scores += out
            bar.update(len(out))
    use_tokens = all(s.num_tokens > 0 for s in scores)
    count = _answer_token_counter(getattr(model, "tokenizer", None))
    records, pos = [], 0
    for it, subset in zip(items, subsets, strict=True):
        answers = [*it.chosen, *it.rejected]
        mine = scores[pos : pos + len(answers)]
        pos += len(answers)
        bad = [s.score for s in mine if not math.isfinite(s.score)]
        if bad:
            raise RewardkitError(
                f"{it.source}: the model gave a non-finite score ({bad[0]}); scores must be finite"
            )
        texts = [a if isinstance(a, str) else a["content"] for a in answers]
        if count is not None:
            lengths = [float(count(t)) for t in texts]
        else:
            lengths = [
                float(s.num_tokens if use_tokens else len(t)) for s, t in zip(mine, texts, strict=True)
            ]
        records.append(
            M.ItemScores.from_scores(
                it.source, subset, mine, lengths, n_chosen=len(it.chosen), item_id=getattr(it, "id", None)
            )
        )
    return records, "answer tokens" if count is not None else "tokens" if use_tokens else "characters"


def _answer_token_counter(tokenizer):
    """len(tokens of an answer's text), or None when `tokenizer` (None: the model has none) cannot encode text."""
    if not callable(tokenizer):
        return None

    def count(text) -> int:
        if not isinstance(text, str):  # an assistant message's non-text content (tool calls): its JSON
            text = "" if text is None else json.dumps(text)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count


def _drop_report_dict(drop_report: Any) -> dict | None:
    if drop_report is None:
        return None
    summary = drop_report.summary  # `rewardkit.data.loading.DropReport` makes it a property
    return {"counts": dict(drop_report.counts), "summary": str(summary() if callable(summary) else summary)}


# ------------------------------------------------------------------------------------------ metrics


def summarize(
    records: Sequence[M.ItemScores],
    *,
    sections: dict[str, dict[str, float | None]] | None = None,
    baseline: dict[str, float] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    near_tie_rel: float = 1e-3,
    n_bins: int = 10,
    length_unit: str = "characters",
    dropped: dict | None = None,
    warnings: Sequence[str] = (),
) -> dict:
    """Every metric of the report, from scored items (pure: no model, no files).

    `dropped` ({"counts", "summary"} of the loader's drop report) and `warnings` are passed through.
    """
    subsets = [r.subset for r in records]
    credit = np.array([r.credit for r in records])
    margins = np.array([r.margin for r in records])
    all_scores = np.array([s for r in records for s in (*r.chosen, *r.rejected)])
    tol = near_tie_rel * (float(all_scores.std()) or 1.0)
    out: dict[str, Any] = {
        "n_items": len(records),
        "n_pairs": sum(1 for r in records if len(r.chosen) == len(r.rejected) == 1),
        "n_conversations": len(all_scores),
        "near_tie_tol": tol,
    }
    rules = {}  # subsets scored by their own rule instead of best-of-N credit (RewardBench 2's Ties)
    for g in {g for g in subsets if RB.is_ties_subset(g)}:
        mine = [r for r in records if r.subset == g]
        value = RB.ties_score([r.id for r in mine], [r.chosen for r in mine], [r.rejected for r in mine])
        if value is not None:
            rules[g] = value
    out.update(_accuracy_summary(credit, margins, subsets, tol, sections, n_boot, seed, rules))
    conf, correct = M.pair_confidence(margins)
    table = M.reliability_table(conf, correct, n_bins)
    out["calibration"] = {"ece": M.expected_calibration_error(table), "n_bins": n_bins, "table": table}
    out["length_bias"] = _length_summary(records, credit, subsets, length_unit, n_boot, seed)
    out["judge"] = M.judge_stats([s for r in records for s in r.sub_scores])
    out["truncation"] = M.truncation_stats([r.truncated for r in records])
    out["baseline"] = None if baseline is None else _baseline_summary(records, credit, baseline, n_boot, seed)
    out["dropped"], out["warnings"] = dropped, list(warnings)
    return out


def _accuracy_summary(credit, margins, subsets, tol, sections, n_boot, seed, rules=None) -> dict:
    overall, per, boot = M.mean_stats(credit, subsets, n_boot, seed)
    for g, value in (rules or {}).items():  # a whole-subset score: no per-item bootstrap interval
        per[g] = {**M.ci_stat(value, None), "rule": "rewardbench2_ties"}
        if boot:
            boot[g] = np.full_like(boot[g], value)
    out: dict[str, Any] = {"accuracy": overall, "subsets": {}, "sections": None, "section_score": None}
    out["tie_rate"], out["near_tie_rate"] = M.tie_rates(margins, tol)
    counts = Counter(subsets)
    for g, stat in per.items():
        ties, near = M.tie_rates(margins[np.asarray(subsets, dtype=object) == g], tol)
        out["subsets"][g] = {"n": counts[g], "accuracy": stat, "tie_rate": ties, "near_tie_rate": near}
    if sections:
        weights = M.section_weights(sections, counts)
        scores = M.section_scores({g: stat["value"] for g, stat in per.items()}, weights)
        sboot = M.section_scores(boot, weights) if boot else None
        out["sections"] = {
            sec: {
                "weights": w,
                "n": sum(counts[s] for s in w),
                "score": M.ci_stat(scores[sec], sboot and sboot[sec]),
            }
            for sec, w in weights.items()
        }
        out["section_score"] = M.ci_stat(M.mean_of_sections(scores), sboot and M.mean_of_sections(sboot))
    return out


def _length_summary(records, credit, subsets, unit, n_boot, seed) -> dict:
    """Length bias; buckets of d = (chosen - rejected) / longer, with each side's mean length on N-way items."""
    longer = [M.item_credit(r.chosen_len, r.rejected_len) for r in records]
    lengths = [x for r in records for x in (*r.chosen_len, *r.rejected_len)]
    scores = [x for r in records for x in (*r.chosen, *r.rejected)]
    mean_c, mean_r = [np.mean(r.chosen_len) for r in records], [np.mean(r.rejected_len) for r in records]
    bucket = M.bucket_index(M.relative_length_diff(mean_c, mean_r)).tolist()
    _, per_bucket, _ = M.mean_stats(credit, bucket, n_boot, seed)
    names = M.bucket_labels()
    return {
        "unit": unit,
        "longer_wins_accuracy": M.mean_stats(longer, subsets, n_boot, seed)[0],
        "pearson": M.pearson(lengths, scores),
        "spearman": M.spearman(lengths, scores),
        "buckets": [
            {"bucket": names[b], "count": bucket.count(b), "accuracy": st} for b, st in per_bucket.items()
        ],
    }


def _baseline_summary(records, credit, baseline, n_boot, seed) -> dict:
    idx = [i for i, r in enumerate(records) if r.source in baseline]
    theirs = [baseline[records[i].source] for i in idx]
    out = M.paired_comparison(credit[idx], theirs, [records[i].subset for i in idx], n_boot, seed)
    return {**out, "n_only_here": len(records) - len(idx), "n_only_baseline": len(baseline) - len(idx)}
