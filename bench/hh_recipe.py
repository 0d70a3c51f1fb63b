"""The best HH-harmless reward model 90 minutes of a 2-core CPU can train, against TRL's RewardTrainer.

    python bench/hh_recipe.py                 # every run not yet done, then the table (about 2 h on 2 cores)
    python bench/hh_recipe.py --runs trl-anchor rk-lr3e-4-300
    python bench/hh_recipe.py --table         # only rebuild bench/results/hh_recipe.{json,md}

The 1,804 HH-harmless dev pairs are split once by a hash of each pair's content
(`split_pairs(..., by="hash")`, 16%: 307 validation pairs, 1,493 training pairs); the parts are written
as the file's own lines to outputs/hh-recipe/split/. Every run trains on the training part (or its
first N pairs) and is scored on the whole validation part with `rewardkit eval`, each rewardkit run
paired against TRL's anchor run (`--baseline_scores`). Nothing is tuned on any other data.

Runs (RUNS below, in order): TRL's RewardTrainer on the anchor recipe (SmolLM2-135M, LoRA r16/a32 on
all linear layers + head, lr 1e-4, batch 8, one epoch on 480 pairs, max length 512; everything else
TRL's defaults except gradient checkpointing, which changes speed, not the result), then the rewardkit
search on the first 300 training pairs (lr 3e-4 with a cosine schedule, with and without
`--length_debias`), then `rewardkit train --config configs/train_smollm2_hh_best.yaml` as shipped: the
better search setting on all training pairs. Both trainers
see the same token ids (rewardkit's tokenization with SmolLM2's chat template). Wall time is the whole
training command (loading, tokenizing, training, export; not the eval). Each run's results are kept in
outputs/hh-recipe/runs/NAME/run.json, so a rerun resumes. trl is imported only in its worker.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import write_results

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
HH_DEV = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless" / "dev.jsonl"
OUT = ROOT / "outputs" / "hh-recipe"
SPLIT = OUT / "split"
BEST_CONFIG = ROOT / "configs" / "train_smollm2_hh_best.yaml"
MODEL_CACHE = Path(os.environ.get("REWARDKIT_TEST_CACHE", ROOT / ".cache" / "test-models"))
VALIDATION_PERCENT = 16  # as in the shipped config: 307 of 1,800 usable pairs

# The rewardkit runs override the shipped config (which trains on dev.jsonl with the same hash split).
SEARCH = ["--train_file_dir", str(SPLIT / "train.jsonl"), "--validation_split_percentage", "0"]
RUNS: dict[str, dict] = {
    "trl-anchor": {"trainer": "trl", "pairs": 480, "learning_rate": 1e-4, "epochs": 1},
    "rk-lr3e-4-300": {
        "trainer": "rewardkit",
        "args": SEARCH + ["--max_train_samples", "300", "--length_debias", "false"],
    },
    "rk-lr3e-4-debias-300": {
        "trainer": "rewardkit",
        "args": SEARCH + ["--max_train_samples", "300", "--length_debias", "true"],
    },
    "rk-best": {"trainer": "rewardkit", "args": []},  # the shipped config as it is
}


def write_split() -> dict:
    """The hash split of the dev pairs, as the file's own lines (train.jsonl, validation.jsonl)."""
    from rewardkit.data.loading import load_pairs, split_pairs

    pairs, report = load_pairs(HH_DEV)
    train, validation = split_pairs(pairs, VALIDATION_PERCENT, seed=0, by="hash")
    lines = HH_DEV.read_text().splitlines(keepends=True)
    SPLIT.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", train), ("validation", validation)):
        rows = [lines[int(p.source.rsplit(":", 1)[1]) - 1] for p in part]
        (SPLIT / f"{name}.jsonl").write_text("".join(rows))
    return {"train": len(train), "validation": len(validation), "read": report.summary()}


def trl_worker(spec: dict) -> None:
    """TRL's RewardTrainer on the anchor recipe (run in its own process); saves a merged model."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer, set_seed
    from trl import RewardConfig, RewardTrainer

    from rewardkit.assets import smollm2_safetensors
    from rewardkit.core.loading import load_sequence_classifier
    from rewardkit.data.loading import DropReport, load_pairs
    from rewardkit.data.tokenize import install_chat_template
    from rewardkit.train.data import tokenize_pairs

    torch.set_num_threads(spec["threads"])
    model_dir = smollm2_safetensors(MODEL_CACHE)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    install_chat_template(tokenizer, None)
    pairs, _ = load_pairs(SPLIT / "train.jsonl")
    rows = tokenize_pairs(tokenizer, pairs[: spec["pairs"]], 512, DropReport(), "tokenizing").to_list()
    data = Dataset.from_list(
        [{"chosen_ids": r["input_ids_chosen"], "rejected_ids": r["input_ids_rejected"]} for r in rows]
    )
    set_seed(0)
    model = load_sequence_classifier(model_dir, dtype="float32", attn_implementation="sdpa")
    model.config.pad_token_id = tokenizer.pad_token_id
    lora = LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="SEQ_CLS"
    )
    args = RewardConfig(
        output_dir=str(Path(spec["out"]) / "trainer"),
        per_device_train_batch_size=8,
        learning_rate=spec["learning_rate"],
        num_train_epochs=spec["epochs"],
        max_length=512,
        gradient_checkpointing=False,
        save_strategy="no",
        report_to=[],
        seed=0,
        use_cpu=True,
        bf16=False,
        disable_tqdm=True,
    )
    trainer = RewardTrainer(
        model=model, args=args, train_dataset=data, processing_class=tokenizer, peft_config=lora
    )
    trainer.train()
    merged = trainer.model.merge_and_unload()
    merged.save_pretrained(Path(spec["out"]) / "model")
    tokenizer.save_pretrained(Path(spec["out"]) / "model")
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    (Path(spec["out"]) / "trl.json").write_text(json.dumps({"pairs": len(rows), "losses": losses}))


def train(name: str, spec: dict, threads: int) -> tuple[Path, float]:
    """Run one training command; (model folder, wall seconds)."""
    out = OUT / "runs" / name
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS=str(threads))
    if spec["trainer"] == "trl":
        cmd = [
            sys.executable,
            __file__,
            "--trl-worker",
            json.dumps({**spec, "out": str(out), "threads": threads}),
        ]
        model = out / "model"
    else:
        cmd = [
            sys.executable,
            "-m",
            "rewardkit",
            "train",
            "--config",
            str(BEST_CONFIG),
            "--output_dir",
            str(out),
        ]
        cmd += spec["args"]
        model = out
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)
    return model, time.perf_counter() - start


def evaluate(name: str, model: Path, baseline: Path | None) -> dict:
    """`rewardkit eval` on the validation part; the numbers the table quotes."""
    out = OUT / "runs" / name / "eval"
    cmd = [
        sys.executable,
        "-m",
        "rewardkit",
        "eval",
        "--model",
        str(model),
        "--data",
        str(SPLIT / "validation.jsonl"),
    ]
    cmd += ["--output_dir", str(out), "--max_length", "512"]
    if baseline is not None:
        cmd += ["--baseline_scores", str(baseline)]
    subprocess.run(cmd, check=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    return json.loads((out / "results.json").read_text())


def run(name: str, threads: int) -> dict:
    """Train (unless train.json says it was done), evaluate, and keep the summary in run.json."""
    out = OUT / "runs" / name
    record = out / "run.json"
    if record.exists():
        return json.loads(record.read_text())
    spec = RUNS[name]
    if (out / "train.json").exists():
        trained = json.loads((out / "train.json").read_text())
    else:
        model, seconds = train(name, spec, threads)
        trained = {"model": str(model), "wall_s": seconds}
        (out / "train.json").write_text(json.dumps(trained))
    anchor = OUT / "runs" / "trl-anchor" / "eval" / "results.json"
    results = evaluate(
        name, Path(trained["model"]), anchor if name != "trl-anchor" and anchor.exists() else None
    )
    summary = {"name": name, "spec": spec, "train_wall_s": trained["wall_s"], "eval": summarize(results)}
    summary["pairs"] = training_pairs(out, spec)
    record.write_text(json.dumps(summary, indent=2))
    return summary


def training_pairs(out: Path, spec: dict) -> int | None:
    """How many pairs a run trained on (after dropping any that did not fit)."""
    if spec["trainer"] == "trl":
        return json.loads((out / "trl.json").read_text())["pairs"]
    metrics = out / "train_results.json"
    return json.loads(metrics.read_text()).get("train_samples") if metrics.exists() else None


def summarize(results: dict) -> dict:
    """Accuracy with its interval, length bias and the paired comparison, from eval's results.json."""
    s = results["summary"]
    length = s.get("length_bias") or {}
    return {
        "n_pairs": s["n_pairs"],
        "accuracy": s["accuracy"],
        "ece": (s.get("calibration") or {}).get("ece"),
        "pearson_reward_length": length.get("pearson"),
        "longer_wins_accuracy": length.get("longer_wins_accuracy"),
        "length_buckets": length.get("buckets"),
        "vs_trl_anchor": s.get("baseline"),
    }


def markdown(table: dict) -> str:
    lines = [
        "| run | trainer | training pairs | training wall (min) | validation accuracy [95% CI] | "
        "Pearson(reward, length) | minus TRL anchor, paired [95% CI] |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in table["runs"]:
        e = r["eval"]
        acc, base = e["accuracy"], e.get("vs_trl_anchor")
        pearson = e.get("pearson_reward_length")
        diff = (
            "-"
            if not base
            else f"{100 * base['diff']['value']:+.1f} [{100 * base['diff']['ci_low']:+.1f}, "
            f"{100 * base['diff']['ci_high']:+.1f}]"
        )
        lines.append(
            f"| {r['name']} | {r['spec']['trainer']} | {r.get('pairs') or '-'} | {r['train_wall_s'] / 60:.1f} | "
            f"{100 * acc['value']:.1f} [{100 * acc['ci_low']:.1f}, {100 * acc['ci_high']:.1f}] | "
            f"{'-' if pearson is None else f'{pearson:+.3f}'} | {diff} |"
        )
    rk = [r["train_wall_s"] for r in table["runs"] if r["spec"]["trainer"] == "rewardkit"]
    lines.append(f"\nrewardkit training wall time, all runs: {sum(rk) / 60:.1f} min (budget 90).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--table", action="store_true", help="only rebuild the table from the runs done")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--trl-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.trl_worker:
        trl_worker(json.loads(args.trl_worker))
        return None
    split = write_split()
    if not args.table:
        for name in args.runs:
            run(name, args.threads)
    done = [OUT / "runs" / n / "run.json" for n in RUNS]
    table = {"split": split, "runs": [json.loads(p.read_text()) for p in done if p.exists()]}
    write_results(RESULTS / "hh_recipe", table, markdown(table))
    return table


if __name__ == "__main__":
    main()
