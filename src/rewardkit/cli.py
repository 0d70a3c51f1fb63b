"""`rewardkit` command line: train, demo, score, eval, serve. Heavy imports live inside the commands."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from rewardkit.errors import RewardkitError

USAGE = """usage: rewardkit <command> [options]

commands:
  train   train a pairwise (Bradley-Terry) reward model, or a process reward model (--objective prm)
  score   score conversations with any reward model (classifier, custom head, generative judge)
  eval    evaluate a reward model on preference sets (accuracy with CIs, calibration, length bias)
  serve   serve a reward model over HTTP (dynamic batching, OpenRLHF and vLLM compatible routes)
  inspect see what a reward model sees (tokens, BOS, reward position), check invariance, diagnose data
  demo    train on the built-in synthetic preference set with MiniLM and score the apples example
  env     print versions, the device and where the packaged models are (for bug reports)

`rewardkit --version` prints the version; `python -m rewardkit` is the same command.

`rewardkit <command> --help` lists a command's options. A YAML/JSON file may be given as
`rewardkit <command> --config FILE [more flags]`: its values become the defaults, so flags given on
the command line win wherever they stand.
"""


def load_config(path: str) -> dict:
    """A YAML/JSON config file's {option: value} mapping, values typed as the file wrote them."""
    import json

    import yaml

    from rewardkit.config import translate_legacy_config

    p = Path(path)
    if not p.is_file():
        raise RewardkitError(f"--config {path}: no such file")
    try:
        data = json.loads(p.read_text()) if p.suffix == ".json" else yaml.safe_load(p.read_text())
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise RewardkitError(
            f"--config {path}: not valid {'JSON' if p.suffix == '.json' else 'YAML'} ({e})"
        ) from e
    if not isinstance(data, dict):
        raise RewardkitError(f"--config {path}: expected a mapping of option names to values")
    return translate_legacy_config({str(k).lstrip("-").replace("-", "_"): v for k, v in data.items()})


def split_config(argv: list[str]) -> tuple[str | None, list[str]]:
    """(the config file, the other flags): `--config FILE` anywhere, or a lone first .yaml/.yml/.json."""
    if argv and argv[0].endswith((".yaml", ".yml", ".json")) and not argv[0].startswith("-"):
        return argv[0], argv[1:]
    for i, arg in enumerate(argv):
        if arg == "--config":
            if i + 1 >= len(argv):
                raise RewardkitError("--config needs a file name")
            return argv[i + 1], argv[:i] + argv[i + 2 :]
        if arg.startswith("--config="):
            return arg.partition("=")[2], argv[:i] + argv[i + 1 :]
    return None, argv


def config_defaults(parser, path: str) -> dict:
    """The config file's values checked against the parser's options, ready for `parser.set_defaults`.

    A value keeps its type (null stays None, a mapping stays a dict); a string goes through the
    option's own conversion as a command-line value would; a single value of a list option is a list.
    """
    actions = {a.dest: a for a in parser._actions if a.dest != "help"}
    values = load_config(path)
    unknown = sorted(set(values) - set(actions))
    if unknown:
        raise RewardkitError(
            f"--config {path}: unknown option(s) {', '.join(unknown)} (see `{parser.prog} --help`)"
        )
    for key, value in values.items():
        action = actions[key]
        if action.nargs == "+" and not isinstance(value, list):
            values[key] = [value]
        elif action.nargs != "+" and isinstance(value, list):
            raise RewardkitError(f"--config {path}: {key} takes one value, got a list")
        elif action.type in (int, float) and isinstance(value, (bool, dict)):
            raise RewardkitError(f"--config {path}: {key} must be a number, got {value!r}")
        elif action.choices and isinstance(value, str) and value not in action.choices:
            choices = ", ".join(map(str, action.choices))
            raise RewardkitError(f"--config {path}: {key} {value}: accepted values are {choices}")
    return values


def parse_dataclasses(types: tuple, argv: list[str], prog: str, defaults: dict | None = None):
    """Parse `argv` into `types` with HfArgumentParser; unknown flags are an error naming them.

    Precedence, lowest first: the dataclasses' defaults, `defaults` (the command's own), the values
    of `--config FILE`, then the flags on the command line.
    """
    from transformers import HfArgumentParser

    path, argv = split_config(argv)
    parser = HfArgumentParser(types, prog=prog)
    parser.set_defaults(**(defaults or {}))
    if path:
        parser.set_defaults(**config_defaults(parser, path))
    try:
        return parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)
    except ValueError as e:  # HfArgumentParser reports leftover flags this way
        raise RewardkitError(str(e).splitlines()[0]) from e


def cmd_train(argv: list[str]) -> int:
    import torch
    from transformers import TrainingArguments

    from rewardkit.config import DataArguments, ModelArguments, ScriptArguments, translate_legacy_args
    from rewardkit.train.preflight import cpu_bf16_argv
    from rewardkit.train.run import run_train

    model_args, data_args, training_args, script_args = parse_dataclasses(
        (ModelArguments, DataArguments, TrainingArguments, ScriptArguments),
        cpu_bf16_argv(translate_legacy_args(argv), gpu_available=torch.cuda.is_available()),
        "rewardkit train",
        defaults={"output_dir": "outputs/reward-model"},  # TrainingArguments has none
    )
    run_train(model_args, data_args, training_args, script_args)
    return 0


def cmd_demo(argv: list[str]) -> int:
    from rewardkit.demo.run import DemoArguments, run_demo

    (args,) = parse_dataclasses((DemoArguments,), argv, "rewardkit demo")
    run_demo(args)
    return 0


def cmd_score(argv: list[str]) -> int:
    from rewardkit.config import RewardModelArguments, ScoreArguments
    from rewardkit.scoring import run_score

    model_args, args = parse_dataclasses((RewardModelArguments, ScoreArguments), argv, "rewardkit score")
    summary = run_score(model_args, args)
    print(f"scored {summary['rows']} rows into {args.output} ({summary['rows_per_second']:.2f} rows/s)")
    return 0


def cmd_eval(argv: list[str]) -> int:
    from rewardkit.config import EvalArguments, RewardModelArguments
    from rewardkit.eval.run import run_eval_files

    model_args, args = parse_dataclasses((RewardModelArguments, EvalArguments), argv, "rewardkit eval")
    model = model_args.load()
    if getattr(model, "kind", None) == "prm":  # step-labelled data and step metrics (docs/prm.md)
        from rewardkit.eval.prm_run import eval_command

        print(eval_command(model, args, model_args.model))
        return 0
    results = run_eval_files(
        model,
        args.data,
        dataset_info=args.dataset_info,
        dataset=args.dataset,
        output_dir=args.output_dir,
        sections_file=args.sections,
        baseline_scores=args.baseline_scores,
        n_boot=args.n_boot,
        seed=args.seed,
        batch_size=args.batch_size,
        model_name=model_args.model,
        stress=args.stress,
        calibrated=args.calibrated,
    )
    acc = results["summary"]["accuracy"]
    ci = f" (95% CI {acc['ci_low']:.1%}–{acc['ci_high']:.1%})" if acc["ci_low"] is not None else ""
    print(
        f"accuracy {acc['value']:.1%}{ci} on {results['summary']['n_items']} items; "
        f"report: {args.output_dir}/report.md"
    )
    return 0


def cmd_serve(argv: list[str]) -> int:
    from rewardkit.config import RewardModelArguments, ServeArguments
    from rewardkit.serve.app import serve

    model_args, args = parse_dataclasses((RewardModelArguments, ServeArguments), argv, "rewardkit serve")
    if args.backend == "vllm":
        from rewardkit.serve.vllm_backend import load_vllm_reward_model

        model = load_vllm_reward_model(model_args)
    else:
        model = model_args.load()
    serve(
        model,
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        log_level=args.log_level,
        max_body_bytes=args.max_body_bytes,
        max_items=args.max_items,
        max_tokens_per_item=args.max_tokens_per_item,
        max_batch_tokens=args.max_batch_tokens,
        max_batch_items=args.max_batch_items,
        max_wait_ms=args.max_wait_ms,
        batching=args.batching,
        normalize_reward=args.normalize_reward,
    )
    return 0


def cmd_inspect(argv: list[str]) -> int:
    from rewardkit.inspect.command import run_inspect

    return run_inspect(argv)


def cmd_env(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print("usage: rewardkit env\n\nPrint versions, the device and where the packaged models are.")
        return 0
    if argv:
        raise RewardkitError(f"env takes no options, got {' '.join(argv)}")
    from rewardkit.envinfo import collect, render

    print(render(collect()))
    return 0


COMMANDS = {
    "train": cmd_train,
    "score": cmd_score,
    "eval": cmd_eval,
    "serve": cmd_serve,
    "demo": cmd_demo,
    "inspect": cmd_inspect,
    "env": cmd_env,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if argv[0] in ("--version", "-V"):
        from rewardkit import __version__

        print(f"rewardkit {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(
            f"rewardkit: error: unknown command '{command}'; choose from {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    try:
        return COMMANDS[command](rest)
    except RewardkitError as e:
        print(f"rewardkit {command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
