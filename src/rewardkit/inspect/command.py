"""`rewardkit inspect model|data`: see exactly what a reward model sees, check its invariance, diagnose data."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from rewardkit.errors import RewardkitError

USAGE = """usage: rewardkit inspect <what> [options]

  model   --model PATH --input FILE [--row N] [--train_config FILE.yaml]: the exact text and tokens the
          model sees for a row, BOS tokens, where the reward is read, trimming; beside training's view
  model   --model PATH --input FILE --check [--dtype bfloat16]: invariance checks (batch size, padding,
          prefix sharing, dtype, the one-at-a-time snippet); exits 1 when one exceeds its tolerance
  data    FILE... [--eval FILE] [--tokenizer PATH --max_length N]: counts, duplicates, identical
          answers, train/eval leakage, length baselines, what the length policy would trim or drop

`rewardkit inspect model --help` and `rewardkit inspect data --help` list every option.
"""


@dataclass
class InspectModelArguments:
    input: str | None = field(
        default=None, metadata={"help": "Rows as `rewardkit score` reads them (required)."}
    )
    row: int = field(default=0, metadata={"help": "Which row to show (0 is the first)."})
    train_config: str | None = field(
        default=None,
        metadata={"help": "A `rewardkit train` YAML/JSON config: show the row as training saw it."},
    )
    check: bool = field(
        default=False, metadata={"help": "Run the invariance checks instead of showing a row."}
    )
    rows: int = field(default=8, metadata={"help": "--check: how many rows (from the first) to check."})
    dtype: str | None = field(
        default=None,
        metadata={"help": "--check: the serving dtype compared with float32 (bfloat16, float16)."},
    )
    tolerance: float = field(
        default=1e-4, metadata={"help": "--check: largest difference allowed (float32)."}
    )
    dtype_tolerance: float = field(
        default=0.1, metadata={"help": "--check: largest float32 vs --dtype difference."}
    )
    output_json: str | None = field(default=None, metadata={"help": "Also write the result as JSON here."})

    def __post_init__(self):
        if not self.input:
            raise RewardkitError("--input is required (rows as `rewardkit score` reads them)")
        if self.row < 0 or self.rows < 1:
            raise RewardkitError("--row must be >= 0 and --rows >= 1")
        if self.dtype not in (None, "float32", "bfloat16", "float16"):
            raise RewardkitError(f"--dtype {self.dtype}: accepted values are float32, bfloat16, float16")


@dataclass
class InspectDataArguments:
    files: list[str] = field(
        default_factory=list, metadata={"help": "Preference files or folders (required)."}
    )
    eval: list[str] = field(
        default_factory=list, metadata={"help": "Eval files: checked for prompts shared with FILE (leakage)."}
    )
    tokenizer: str | None = field(
        default=None, metadata={"help": "Tokenizer folder: lengths in tokens, and the length policy."}
    )
    template_name: str | None = field(default="auto", metadata={"help": "Chat template for --tokenizer."})
    max_length: int | None = field(
        default=None,
        metadata={"help": "Tokens per conversation: how many pairs would be trimmed or dropped."},
    )
    output_json: str | None = field(default=None, metadata={"help": "Also write the report as JSON here."})

    def __post_init__(self):
        if not self.files:
            raise RewardkitError("give one or more preference files: rewardkit inspect data FILE... ")
        if self.max_length is not None and not self.tokenizer:
            raise RewardkitError("--max_length needs --tokenizer (the length policy counts tokens)")


def read_items(path: str, limit: int):
    """The first `limit` rows of a scoring input, parsed as `rewardkit score` parses them."""
    from rewardkit.data.rows import parse_score_row
    from rewardkit.scoring import _input_rows

    if not Path(path).is_file():
        raise RewardkitError(f"--input {path}: no such file")
    items = []
    for lineno, raw in _input_rows(path):
        item = parse_score_row(path, lineno, raw)
        if isinstance(item, RewardkitError):
            raise item
        items.append(item)
        if len(items) >= limit:
            break
    return items


def _conversations(item) -> list[tuple[str, list]]:
    if item.kind == "pair":
        return [("chosen", item.pair.chosen_messages()), ("rejected", item.pair.rejected_messages())]
    return [("conversation", item.messages)]


def show_row(rm, item, train_config: str | None) -> tuple[str, dict]:
    """The row as scoring sees it (and as training saw it), as text and as JSON-ready data."""
    from rewardkit.inspect.view import format_view, scoring_view

    text, data = [], {"source": item.pair.source if item.pair else None, "scoring": {}}
    views = {}
    for side, conv in _conversations(item):
        views[side] = scoring_view(rm, conv)
        text.append(format_view(f"scoring ({rm.kind}), {side}", views[side]))
        data["scoring"][side] = views[side]
    if train_config:
        from rewardkit.data.schema import PreferencePair
        from rewardkit.inspect.training_view import compare_ids, training_tokenizer, training_view

        tok, max_length, described = training_tokenizer(train_config)
        pair = item.pair
        if pair is None:  # a single conversation: training reads pairs, so it stands as both sides
            conv = item.messages
            system = conv[0]["content"] if conv[0]["role"] == "system" else None
            prompt = conv[1 if system else 0 : -1]
            pair = PreferencePair(prompt, conv[-1]["content"], conv[-1]["content"], system)
        seen = training_view(tok, pair, max_length)
        data["training"] = seen
        text.append(f"== training ({train_config}: {described}, max_length {max_length})")
        if "dropped" in seen:
            text.append(f"DROPPED by training: {seen['dropped']}")
        else:
            text.append(f"context turns trimmed: {seen['turns_trimmed']}")
            for side in views:
                ids = seen["chosen" if side != "rejected" else "rejected"]
                diff = compare_ids(tok, views[side].get("ids", []), ids["ids"])
                data.setdefault("differences", {})[side] = diff
                text.append(
                    f"{side}: {ids['num_tokens']} tokens, BOS {ids['bos_leading']} at the start"
                    + (" DOUBLE BOS" if ids["bos_leading"] > 1 else "")
                    + ("; same tokens as scoring" if diff is None else f"; DIFFERENT from scoring: {diff}")
                )
                if diff is not None:
                    text.append(f"text training saw:\n{tok.decode(ids['ids'])}")
    return "\n".join(text) + "\n", data


def inspect_model(argv: list[str]) -> int:
    from rewardkit.cli import parse_dataclasses
    from rewardkit.config import RewardModelArguments
    from rewardkit.inspect.checks import format_checks, run_checks
    from rewardkit.scorers.base import Group

    model_args, args = parse_dataclasses(
        (RewardModelArguments, InspectModelArguments), argv, "rewardkit inspect model"
    )
    rm = model_args.load()
    if not args.check:
        items = read_items(args.input, args.row + 1)
        if len(items) <= args.row:
            raise RewardkitError(f"--row {args.row}: {args.input} has {len(items)} rows")
        text, data = show_row(rm, items[args.row], args.train_config)
        print(text, end="")
        _write_json(args.output_json, data)
        return 0
    items = read_items(args.input, args.rows)
    conversations = [conv for item in items for _, conv in _conversations(item)]
    groups = [
        Group(i.pair.prompt_messages(), [i.pair.chosen, i.pair.rejected]) for i in items if i.kind == "pair"
    ]

    def reload(dtype: str):
        return rm if dtype == model_args.torch_dtype else replace(model_args, torch_dtype=dtype).load()

    checks = run_checks(
        rm,
        conversations,
        groups,
        path=model_args.model,
        reload=reload,
        dtype=args.dtype,
        tolerance=args.tolerance,
        dtype_tolerance=args.dtype_tolerance,
    )
    print(f"invariance checks of {model_args.model} (kind {rm.kind}) on {len(conversations)} conversations\n")
    print(format_checks(checks), end="")
    _write_json(args.output_json, [c.__dict__ for c in checks])
    return 1 if any(c.status == "FAIL" for c in checks) else 0


def inspect_data_command(argv: list[str]) -> int:
    import time

    from rewardkit.cli import parse_dataclasses
    from rewardkit.inspect.data import inspect_data, to_markdown

    files = []
    while argv and not argv[0].startswith("-"):
        files.append(argv.pop(0))
    if files:
        argv = ["--files", *files, *argv]
    (args,) = parse_dataclasses((InspectDataArguments,), argv, "rewardkit inspect data")
    start = time.perf_counter()
    tokenizer = None
    if args.tokenizer:
        from rewardkit.core.loading import load_tokenizer
        from rewardkit.data.tokenize import install_chat_template

        tokenizer = load_tokenizer(args.tokenizer, flag="--tokenizer")
        install_chat_template(tokenizer, args.template_name)
    report = inspect_data(args.files, args.eval, tokenizer=tokenizer, max_length=args.max_length)
    report["seconds"] = round(time.perf_counter() - start, 2)
    print(to_markdown(report) + f"\n({report['seconds']} s)")
    _write_json(args.output_json, report)
    return 0


def _write_json(path: str | None, data) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def run_inspect(argv: list[str]) -> int:
    """`rewardkit inspect` entry point: dispatch to `model` or `data`."""
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    what, rest = argv[0], list(argv[1:])
    if what == "model":
        return inspect_model(rest)
    if what == "data":
        return inspect_data_command(rest)
    print(f"rewardkit inspect: error: unknown '{what}'; choose model or data", file=sys.stderr)
    return 2
