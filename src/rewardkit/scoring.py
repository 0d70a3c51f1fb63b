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

Example:
    >>> summary = run_score(ScoreArguments(model="outputs/demo/model", input="convs.jsonl",
    ...                                    output="scored.jsonl"))  # doctest: +SKIP
    >>> summary["rows"], summary["pairs"]  # doctest: +SKIP
    (200, 0)
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardkit.errors import DataError, RewardkitError

logger = logging.getLogger("rewardkit.score")

KINDS = ("auto", "seq_classifier", "value_head", "remote_code", "function", "generative")
JUDGE_MODES = ("pairwise", "pointwise", "logprob")
DTYPES = ("auto", "bfloat16", "float16", "float32")
PAIR_KEYS = frozenset(
    {"chosen", "rejected", "question", "response_chosen", "response_rejected", "conversations"}
)
ACCEPTED = (  # said in every error about a row's layout
    "a JSON array of messages [{role, content}, ...] ending with the assistant answer; "
    '{"messages": [...]}; {"prompt": str or messages, "response": str}; or a preference pair '
    "(formats: medicalgpt, trl, trl_implicit, hh, sharegpt, nway with one chosen and one rejected)"
)


H_TEMPLATE = "Chat template: vicuna, alpaca, chatml, qwen, llama3, plain, or auto (the tokenizer's own)."
H_MAX_LENGTH = "Tokens per conversation; older turns are dropped beyond it (default: the model's limit)."
H_SKIP = "Write unreadable rows to <output>.bad.jsonl with the error and go on (default: stop at the first)."
H_MODE = "Generative judges: pairwise verdicts, pointwise 1-10 ratings, or logprob (probabilities)."


@dataclass
class ScoreArguments:
    model: str | None = field(
        default=None, metadata={"help": "Model folder, or module.path:function (required)."}
    )
    input: str | None = field(
        default=None, metadata={"help": "Rows to score: .jsonl, .json or .parquet (required)."}
    )
    output: str | None = field(
        default=None, metadata={"help": "Where scored rows go, as JSON Lines (required)."}
    )
    kind: str = field(
        default="auto",
        metadata={"help": "Reward model kind (auto: from the checkpoint).", "choices": list(KINDS)},
    )
    gguf_file: str | None = field(default=None, metadata={"help": "GGUF file inside --model (dequantised)."})
    torch_dtype: str = field(default="float32", metadata={"help": "Weights dtype.", "choices": list(DTYPES)})
    attn_implementation: str | None = field(
        default=None, metadata={"help": "eager, sdpa, flash_attention_2, ..."}
    )
    device_map: str | None = field(
        default=None, metadata={"help": "e.g. auto, cpu, cuda:0 (default: a GPU if any)."}
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Run the model folder's own Python code."}
    )
    allow_pickle: bool = field(
        default=False,
        metadata={"help": "Load pickle weights (pytorch_model.bin); by default only safetensors or GGUF."},
    )
    template_name: str | None = field(default="auto", metadata={"help": H_TEMPLATE})
    max_length: int | None = field(default=None, metadata={"help": H_MAX_LENGTH})
    batch_tokens: int = field(
        default=16384, metadata={"help": "Padded tokens per forward (rows x longest row)."}
    )
    chunk_size: int = field(
        default=256, metadata={"help": "Input rows per scoring call and per output flush."}
    )
    resume: bool = field(
        default=False, metadata={"help": "Continue a stopped run: skip rows already written."}
    )
    skip_bad_lines: bool = field(default=False, metadata={"help": H_SKIP})
    normalize: bool = field(
        default=False,
        metadata={"help": "Also write (score - mean) / std when the checkpoint carries reward statistics."},
    )
    mode: str = field(default="pairwise", metadata={"help": H_MODE, "choices": list(JUDGE_MODES)})
    max_new_tokens: int = field(
        default=256, metadata={"help": "Generative judges: tokens generated per verdict."}
    )

    def __post_init__(self):
        for flag in ("model", "input", "output"):
            if not getattr(self, flag):
                raise RewardkitError(f"--{flag} is required")
        for flag, value, accepted in (
            ("kind", self.kind, KINDS),
            ("torch_dtype", self.torch_dtype, DTYPES),
            ("mode", self.mode, JUDGE_MODES),
        ):
            if value not in accepted:
                raise RewardkitError(f"--{flag} {value}: accepted values are {', '.join(accepted)}")
        if self.max_length is not None and self.max_length < 8:
            raise RewardkitError(f"--max_length {self.max_length}: must be at least 8")
        for flag in ("batch_tokens", "chunk_size", "max_new_tokens"):
            if getattr(self, flag) < 1:
                raise RewardkitError(f"--{flag} {getattr(self, flag)}: must be at least 1")
        if Path(self.input).resolve() == Path(self.output).resolve():
            raise RewardkitError(f"--output {self.output}: must differ from --input")


def run_score(args: ScoreArguments, reward_model=None) -> dict:
    """Score every row of `args.input` into `args.output`; returns a summary.

    Args:
        args: the parsed options.
        reward_model: an already loaded reward model to use instead of loading `args.model`.

    Returns:
        {"rows", "conversations", "pairs", "skipped", "resumed_after", "seconds", "rows_per_second",
        "output", "bad_output"}: `rows` counts the rows scored in this run, bad rows not included.
    """
    from tqdm import tqdm

    from rewardkit.parallel import Processes

    if not Path(args.input).is_file():
        raise DataError("no such file (--input)", path=args.input)
    output, bad_output = Path(args.output), Path(f"{args.output}.bad.jsonl")
    procs = Processes()  # several under `accelerate launch`: each scores a share, the main one writes
    done = procs.from_main(lambda: _prepare_outputs(output, bad_output, args.resume))
    rm = reward_model or _load(args, procs.device)
    if args.normalize and getattr(rm, "normalization", None) is None:
        logger.warning(
            "--normalize: %s has no reward statistics (reward_mean/reward_std): nothing to normalise by",
            args.model,
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
            parsed = [_parse(args.input, lineno, raw) for lineno, raw in chunk]  # the same on every process
            bad = [p for p in parsed if isinstance(p, RewardkitError)]
            if bad and not args.skip_bad_lines:
                raise bad[0]
            good = [p for p in parsed if not isinstance(p, RewardkitError)]
            scored = iter(procs.gather(_score_chunk(rm, procs.share(good), args.normalize)))
            for (lineno, raw), item in zip(chunk, parsed):
                if isinstance(item, RewardkitError):
                    if procs.is_main:
                        out.flush()  # both files stay a prefix of the input (see the module docstring)
                        with bad_output.open("a", encoding="utf-8") as f:
                            f.write(
                                json.dumps(
                                    {"line": lineno, "error": str(item), "row": _as_text(raw)},
                                    ensure_ascii=False,
                                )
                                + "\n"
                            )
                    counts["skipped"] += 1
                else:
                    out.write(json.dumps(next(scored), ensure_ascii=False) + "\n")
                    counts["pairs" if item.kind == "pair" else "conversations"] += 1
            out.flush()
            bar.update(len(chunk))
    seconds = time.perf_counter() - start
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


# ---------------------------------------------------------------- loading and output files


def _load(args: ScoreArguments, process_device: str | None = None):
    from rewardkit.scorers.load import load_reward_model

    return load_reward_model(
        args.model,
        kind=args.kind,
        gguf_file=args.gguf_file,
        dtype=args.torch_dtype,
        attn_implementation=args.attn_implementation,
        device_map=args.device_map or process_device,
        trust_remote_code=args.trust_remote_code,
        allow_pickle=args.allow_pickle,
        template_name=args.template_name,
        max_length=args.max_length,
        batch_tokens=args.batch_tokens,
        mode=args.mode,
        max_new_tokens=args.max_new_tokens,
    )


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


@dataclass
class _Item:
    kind: str  # "conversation" or "pair"
    row: dict  # what is written back, plus the scores
    messages: list | None = None  # conversation
    pair: Any = None  # PreferencePair


def _parse(path: str, lineno: int, raw: Any) -> _Item | RewardkitError:
    """One input row as a conversation or a pair, or the error that says what is wrong and what is accepted."""
    from rewardkit.data.formats import detect_format, normalize_row

    source = f"{path}:{lineno}"
    try:
        row = _decode(raw, path, lineno)
        if isinstance(row, list):
            return _Item("conversation", {"messages": row}, messages=_conversation(row, source, "messages"))
        if "messages" in row:
            return _Item(
                "conversation", dict(row), messages=_conversation(row["messages"], source, "messages")
            )
        if "response" in row:
            return _Item("conversation", dict(row), messages=_prompt_response(row, source))
        if PAIR_KEYS & row.keys():
            return _Item(
                "pair", dict(row), pair=normalize_row(row, source=source, fmt=detect_format(row, source))
            )
        keys = ", ".join(sorted(row)) or "none"
        return DataError(
            f"row matches no accepted layout (its keys: {keys}); accepted: {ACCEPTED}", path=path, line=lineno
        )
    except RewardkitError as e:
        return e


def _decode(raw: Any, path: str, lineno: int) -> Any:
    if not isinstance(raw, bytes):
        return raw
    try:
        row = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise DataError("not UTF-8 text", path=path, line=lineno) from None
    except json.JSONDecodeError as e:
        raise DataError(
            f"malformed JSON: {e.msg} (column {e.colno}); accepted: {ACCEPTED}", path=path, line=lineno
        ) from None
    if not isinstance(row, (dict, list)):
        raise DataError(
            f"expected a JSON object or array, got {type(row).__name__}; accepted: {ACCEPTED}",
            path=path,
            line=lineno,
        )
    return row


def _where(source: str, name: str) -> dict:
    path, _, line = source.rpartition(":")
    return {"path": path, "line": int(line), "field": name}


def _messages(value: Any, source: str, name: str) -> list[dict]:
    from rewardkit.data.formats import ROLES

    if not isinstance(value, list) or not value:
        raise DataError(
            f"expected a non-empty list of messages; accepted: {ACCEPTED}", **_where(source, name)
        )
    messages = []
    for i, m in enumerate(value):
        role = m.get("role", m.get("from")) if isinstance(m, Mapping) else None
        content = m.get("content", m.get("value")) if isinstance(m, Mapping) else None
        if not isinstance(role, str) or role.lower() not in ROLES or not isinstance(content, str):
            expected = f"{{'role': one of {', '.join(ROLES)}, 'content': str}}"
            raise DataError(f"message {i}: expected {expected}", **_where(source, name))
        messages.append({"role": ROLES[role.lower()], "content": content})
    return messages


def _conversation(value: Any, source: str, name: str) -> list[dict]:
    messages = _messages(value, source, name)
    if messages[-1]["role"] != "assistant":
        ends = messages[-1]["role"]
        raise DataError(
            f"must end with the assistant answer to score, ends with {ends}", **_where(source, name)
        )
    return messages


def _prompt_response(row: Mapping, source: str) -> list[dict]:
    prompt, response, system = row.get("prompt"), row["response"], row.get("system")
    if not isinstance(response, str):
        raise DataError("expected a string", **_where(source, "response"))
    if system is not None and not isinstance(system, str):
        raise DataError("expected a string or null", **_where(source, "system"))
    if isinstance(prompt, str):
        head = [{"role": "user", "content": prompt}]
    elif isinstance(prompt, list):
        head = _messages(prompt, source, "prompt")
    else:
        raise DataError("expected a string or a list of messages", **_where(source, "prompt"))
    system_turn = [{"role": "system", "content": system}] if system else []
    return system_turn + head + [{"role": "assistant", "content": response}]


def _as_text(raw: Any) -> Any:
    return raw.decode("utf-8", "replace").rstrip("\r\n") if isinstance(raw, bytes) else raw


# ---------------------------------------------------------------- scoring


def _score_chunk(rm, items: list[_Item], normalize: bool) -> list[dict]:
    """Output rows for `items`, in order: conversations in one scoring call, pairs in another."""
    convs = [i for i in items if i.kind == "conversation"]
    pairs = [i for i in items if i.kind == "pair"]
    conv_scores = rm.score_detailed([i.messages for i in convs]) if convs else []
    chosen, rejected = _pair_scores(rm, [i.pair for i in pairs]) if pairs else ([], [])
    by_item = {id(i): _fields(s, "", normalize) for i, s in zip(convs, conv_scores)}
    for i, c, r in zip(pairs, chosen, rejected):
        fields = {**_fields(c, "_chosen", normalize), **_fields(r, "_rejected", normalize)}
        if "truncated_chosen" in fields:
            fields["truncated"] = fields.pop("truncated_chosen") or fields.pop("truncated_rejected")
        by_item[id(i)] = fields
    return [{**i.row, **by_item[id(i)]} for i in items]


def _pair_scores(rm, pairs: list) -> tuple[list, list]:
    """Both sides' `Score`s, each pair scored as a group of two (prefix sharing, or a judge's verdicts)."""
    return rm.score_pairs_detailed(
        [p.prompt_messages() for p in pairs], [p.chosen for p in pairs], [p.rejected for p in pairs]
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
    return out
