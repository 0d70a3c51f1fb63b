"""`rewardkit` command line: train, demo, score, eval, serve. Heavy imports live inside the commands."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from rewardkit.errors import RewardkitError

USAGE = """usage: rewardkit <command> [options]

commands:
  train   train a pairwise (Bradley-Terry) reward model (LoRA or full fine-tuning)
  score   score conversations with any reward model (classifier, custom head, generative judge)
  eval    evaluate a reward model on preference sets (accuracy with CIs, calibration, length bias)
  serve   serve a reward model over HTTP (dynamic batching, OpenRLHF and vLLM compatible routes)
  demo    train on the built-in synthetic preference set with MiniLM and score the apples example

`rewardkit <command> --help` lists a command's options. A YAML/JSON file may be given as
`rewardkit <command> --config FILE [more flags]`; flags after it override the file.
"""


def config_to_argv(path: str) -> list[str]:
    """The flags that a YAML/JSON config file stands for (`key: value` → `--key value`)."""
    import json

    import yaml

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
    argv: list[str] = []
    for key, value in data.items():
        values = value if isinstance(value, list) else [value]
        argv += [f"--{key}"] + [str(v) for v in values]
    return argv


def expand_config(argv: list[str]) -> list[str]:
    """Replace `--config FILE` (or a lone first argument ending in .yaml/.yml/.json) by its flags."""
    if argv and argv[0].endswith((".yaml", ".yml", ".json")) and not argv[0].startswith("-"):
        return config_to_argv(argv[0]) + argv[1:]
    if "--config" in argv:
        i = argv.index("--config")
        if i + 1 >= len(argv):
            raise RewardkitError("--config needs a file name")
        return argv[:i] + config_to_argv(argv[i + 1]) + argv[i + 2 :]
    return argv


def parse_dataclasses(types: tuple, argv: list[str], prog: str):
    """Parse `argv` into `types` with HfArgumentParser; unknown flags are an error naming them."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(types, prog=prog)
    try:
        return parser.parse_args_into_dataclasses(args=argv)
    except ValueError as e:  # HfArgumentParser reports leftover flags this way
        raise RewardkitError(str(e).splitlines()[0]) from e


def cmd_train(argv: list[str]) -> int:
    from transformers import TrainingArguments

    from rewardkit.config import DataArguments, ModelArguments, ScriptArguments, translate_legacy_args
    from rewardkit.train.run import run_train

    argv = translate_legacy_args(expand_config(argv))
    if not any(a == "--output_dir" or a.startswith("--output_dir=") for a in argv):
        argv += ["--output_dir", "outputs/reward-model"]
    model_args, data_args, training_args, script_args = parse_dataclasses(
        (ModelArguments, DataArguments, TrainingArguments, ScriptArguments), argv, "rewardkit train"
    )
    run_train(model_args, data_args, training_args, script_args)
    return 0


def cmd_demo(argv: list[str]) -> int:
    from rewardkit.demo.run import DemoArguments, run_demo

    (args,) = parse_dataclasses((DemoArguments,), expand_config(argv), "rewardkit demo")
    run_demo(args)
    return 0


def cmd_score(argv: list[str]) -> int:
    from rewardkit.scoring import ScoreArguments, run_score

    (args,) = parse_dataclasses((ScoreArguments,), expand_config(argv), "rewardkit score")
    summary = run_score(args)
    print(f"scored {summary['rows']} rows into {args.output} ({summary['rows_per_second']:.2f} rows/s)")
    return 0


def cmd_eval(argv: list[str]) -> int:
    from rewardkit.config import EvalArguments, RewardModelArguments
    from rewardkit.eval.run import run_eval_files

    model_args, args = parse_dataclasses(
        (RewardModelArguments, EvalArguments), expand_config(argv), "rewardkit eval"
    )
    results = run_eval_files(
        model_args.load(),
        args.data,
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

    model_args, args = parse_dataclasses(
        (RewardModelArguments, ServeArguments), expand_config(argv), "rewardkit serve"
    )
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
    )
    return 0


COMMANDS = {"train": cmd_train, "score": cmd_score, "eval": cmd_eval, "serve": cmd_serve, "demo": cmd_demo}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
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
