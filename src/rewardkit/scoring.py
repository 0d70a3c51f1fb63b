"""`rewardkit score`: stream a JSON Lines file through any reward model and write each row with its score.

Each input line is one of:

* a conversation: a JSON array of messages `[{"role", "content"}, ...]`, or `{"messages": [...]}`,
  ending with the assistant answer to score;
* a prompt and a response: `{"prompt": str or messages, "response": str, "system"?: str}`;
* a preference pair in any format `rewardkit train` reads (`rewardkit.data.formats.FORMATS`): both
  answers are scored.

Each output line is the input row (a bare message array becomes `{"messages": [...]}`) plus `score`,
`num_tokens` and `truncated` (context turns had to be dropped to fit), or for pairs `score_chosen`,
`score_rejected`, `num_tokens_chosen`, `num_tokens_rejected` and `truncated` (either side); with
`--normalize` also `normalized` (`normalized_chosen`/`_rejected`) when the checkpoint carries reward
statistics, and `sub_scores` (`sub_scores_chosen`/`_rejected`) from multi-objective heads and judges.

Crash safety: rows are written in input order and flushed every chunk; a bad row written to
`<output>.bad.jsonl` is flushed before the next good row, so the complete lines of both files always
stand for a prefix of the input, and `--resume` skips exactly that many input rows.

Data-parallel: under `accelerate launch --num_processes N -m rewardkit.cli score ...` (or torchrun) each
process loads the model on its own device and scores every N-th row of each chunk; the main process
gathers the scores and alone writes the output, in input order (`rewardkit.parallel`).

Example (a Python function as the reward model, so that it runs anywhere):
    >>> import json, pathlib, tempfile
    >>> from rewardkit.scorers.function import FunctionRM
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "in.jsonl").write_text(json.dumps({"prompt": "2+2?", "response": "four"}) + "\\n")
    >>> rm = FunctionRM(lambda convs: [float(len(c[-1]["content"])) for c in convs], "length")
    >>> summary = run_score(rm, ScoreArguments(input=str(folder / "in.jsonl"), output=str(folder / "out.jsonl")))
    >>> summary["rows"], summary["pairs"], json.loads((folder / "out.jsonl").read_text())["score"]
    (1, 0, 4.0)
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rewardkit.config import RewardModelArguments, ScoreArguments
from rewardkit.errors import DataError, RewardkitError

if TYPE_CHECKING:
    from rewardkit.scorers.base import RewardModel

logger = logging.getLogger("rewardkit.score")


def run_score(model: RewardModelArguments | RewardModel, args: ScoreArguments) -> dict:
    """Score every row of `args.input` into `args.output`; returns a summary.

    Args:
        model: how to load the reward model (loaded here, on this process's device under
            `accelerate launch`), or an already loaded one (`load_reward_model`).
        args: the score command's own options.

    Returns:
        {"rows", "conversations", "pairs", "skipped", "resumed_after", "seconds", "rows_per_second",
        "output", "bad_output"}: `rows` counts the rows scored in this run, bad rows not included.
    """
    from tqdm import tqdm

    from rewardkit.data.rows import parse_score_row
    from rewardkit.parallel import Processes

    if not Path(args.input).is_file():
        raise DataError("no such file (--input)", path=args.input)
    output, bad_output = Path(args.output), Path(f"{args.output}.bad.jsonl")
    procs = Processes()  # several under `accelerate launch`: each scores a share, the main one writes
    done = procs.from_main(lambda: _prepare_outputs(output, bad_output, args.resume))
    rm = model.load(device_map=procs.device) if isinstance(model, RewardModelArguments) else model
    temperature = getattr(rm, "temperature", None) if args.calibrated else None
    if args.calibrated and temperature is None:
        raise RewardkitError(
            f"--calibrated: {getattr(model, 'model', type(rm).__name__)} has no reward_temperature in "
            "config.json (train it with --calibrate)"
        )
    if args.normalize and getattr(rm, "normalization", None) is None:
        logger.warning(
            "--normalize: %s has no reward statistics (reward_mean/reward_std): nothing to normalise by",
            getattr(model, "model", type(rm).__name__),
        )
    counts = {"conversations": 0, "pairs": 0, "skipped": 0}
    start = time.perf_counter()
    total = _count_rows(args.input)
    writer = output.open("a", encoding="utf-8") if procs.is_main else open(os.devnull, "w")
    with (
        writer as out,
        tqdm(total=total, initial=done, unit="rows", disable=None if procs.is_main else True) as bar,
    ):
        for chunk in _chunks(_skip(_input_rows(args.input), done), args.chunk_size):
            parsed = [
                parse_score_row(args.input, lineno, raw) for lineno, raw in chunk
            ]  # the same on every process
            bad = [p for p in parsed if isinstance(p, RewardkitError)]
            if bad and not args.skip_bad_lines:
                raise bad[0]
            good = [p for p in parsed if not isinstance(p, RewardkitError)]
            scored = iter(procs.gather(_score_chunk(rm, procs.share(good), args.normalize, temperature)))
            for (lineno, raw), item in zip(chunk, parsed):
                if isinstance(item, RewardkitError):
                    if procs.is_main:
                        out.flush()  # both files stay a prefix of the input (see the module docstring)
                        _write_bad_row(bad_output, lineno, item, raw)
                    counts["skipped"] += 1
                else:
                    out.write(json.dumps(next(scored), ensure_ascii=False) + "\n")
                    counts["pairs" if item.kind == "pair" else "conversations"] += 1
            out.flush()
            bar.update(len(chunk))
    return _summary(counts, done, time.perf_counter() - start, output, bad_output)


def _summary(counts: dict, done: int, seconds: float, output: Path, bad_output: Path) -> dict:
    rows = counts["conversations"] + counts["pairs"]
    summary = {
        "rows": rows,
        **counts,
        "resumed_after": done,
        "seconds": round(seconds, 3),
        "rows_per_second": round(rows / seconds, 3) if seconds > 0 else 0.0,
        "output": str(output),
        "bad_output": str(bad_output) if counts["skipped"] else None,
    }
    logger.info(
        "scored %d rows (%d pairs) in %.1fs, %.1f rows/s; %d bad rows%s",
        rows,
        counts["pairs"],
        seconds,
        summary["rows_per_second"],
        counts["skipped"],
        f" in {bad_output}" if counts["skipped"] else "",
    )
    return summary


def _write_bad_row(bad_output: Path, lineno: int, error: RewardkitError, raw: Any) -> None:
    row = {"line": lineno, "error": str(error), "row": _as_text(raw)}
    with bad_output.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------- loading and output files


def _prepare_outputs(output: Path, bad_output: Path, resume: bool) -> int:
    """Input rows already done (0 for a fresh run); refuses to overwrite without --resume."""
    if not resume:
        if output.is_file() and output.stat().st_size > 0:
            raise RewardkitError(
                f"--output {output} exists and is not empty; pass --resume to continue it "
                "or choose another --output"
            )
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_bytes(b"")
        bad_output.unlink(missing_ok=True)
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    output.touch()
    done = complete_lines(output) + (complete_lines(bad_output) if bad_output.is_file() else 0)
    logger.info("--resume: %d rows already written to %s; continuing after them", done, output)
    return done


def complete_lines(path: Path) -> int:
    """Newline-terminated lines in `path`, after cutting off a partial last line (a crash mid-write)."""
    count, end = 0, 0
    with path.open("rb") as f:
        for line in f:
            if line.endswith(b"\n"):
                count += 1
                end += len(line)
    if end != path.stat().st_size:
        with path.open("r+b") as f:
            f.truncate(end)
    return count


# ---------------------------------------------------------------- reading rows


def _input_rows(path: str) -> Iterator[tuple[int, Any]]:
    """(line number, raw row) in constant memory; a JSON Lines row stays text until parsed, so that one
    malformed line is one bad row (and a bare message array is allowed), not the end of the stream."""
    from rewardkit.data.loading import iter_rows

    file = Path(path)
    if file.suffix != ".jsonl":
        yield from iter_rows(file)
        return
    with file.open("rb") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                yield lineno, line


def _count_rows(path: str) -> int | None:
    """Rows in a JSON Lines file, for the progress bar (a quick pass over the bytes); None for others."""
    if Path(path).suffix != ".jsonl":
        return None
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def _skip(rows: Iterator, n: int) -> Iterator:
    for i, row in enumerate(rows):
        if i >= n:
            yield row


def _chunks(rows: Iterator, size: int) -> Iterator[list]:
    chunk = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _as_text(raw: Any) -> Any:
    return raw.decode("utf-8", "replace").rstrip("\r\n") if isinstance(raw, bytes) else raw


# ---------------------------------------------------------------- scoring


def _score_chunk(rm, items: list, normalize: bool, temperature: float | None = None) -> list[dict]:
    """Output rows for `items`, in order: conversations in one scoring call, pairs in another.

    With a `temperature` (`--calibrated`), pairs also get p_chosen = σ((chosen − rejected) / T).
    """
    convs = [i for i in items if i.kind == "conversation"]
    pairs = [i for i in items if i.kind == "pair"]
    conv_scores = rm.score_detailed([i.messages for i in convs]) if convs else []
    chosen, rejected = _pair_scores(rm, [i.pair for i in pairs]) if pairs else ([], [])
    by_item = {id(i): _fields(s, "", normalize) for i, s in zip(convs, conv_scores)}
    for i, c, r in zip(pairs, chosen, rejected):
        fields = {**_fields(c, "_chosen", normalize), **_fields(r, "_rejected", normalize)}
        if "truncated_chosen" in fields:
            fields["truncated"] = fields.pop("truncated_chosen") or fields.pop("truncated_rejected")
        if temperature is not None:
            x = (c.score - r.score) / temperature
            fields["p_chosen"] = 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))
        by_item[id(i)] = fields
    by_item.update(_step_fields(rm, [i for i in items if i.kind == "steps"]))
    return [{**i.row, **by_item[id(i)]} for i in items]


def _step_fields(rm, items: list) -> dict[int, dict]:
    """Step rows: a process reward model's score per step (`step_scores`) and their aggregate (`score`)."""
    if not items:
        return {}
    if not hasattr(rm, "score_solutions"):
        raise RewardkitError(
            f"{items[0].steps.source}: a step-by-step row needs a process reward model (kind prm), "
            f"not a {rm.kind}; give it as a conversation to score the whole answer"
        )
    scored = rm.score_solutions([(i.steps.prompt_messages(), i.steps.steps) for i in items])
    return {
        id(i): {
            "score": s.score,
            "step_scores": s.step_scores,
            "num_tokens": s.num_tokens,
            "truncated": s.truncated,
        }
        for i, s in zip(items, scored)
    }


def _pair_scores(rm, pairs: list) -> tuple[list, list]:
    """Both sides' `Score`s, each pair scored as a group of two (prefix sharing, or a judge's verdicts)."""
    return rm.score_pairs_detailed(
        [p.prompt_messages() for p in pairs],
        [p.chosen_answer() if p.chosen_tool_calls else p.chosen for p in pairs],  # tool calls: a message
        [p.rejected_answer() if p.rejected_tool_calls else p.rejected for p in pairs],
    )


def _fields(score, suffix: str, normalize: bool) -> dict:
    out = {
        f"score{suffix}": score.score,
        f"num_tokens{suffix}": score.num_tokens,
        f"truncated{suffix}": score.truncated,
    }
    if normalize and score.normalized is not None:
        out[f"normalized{suffix}"] = score.normalized
    if score.sub_scores:
        out[f"sub_scores{suffix}"] = score.sub_scores
    if score.step_scores is not None:
        out[f"step_scores{suffix}"] = score.step_scores
    return out
