"""Reward-hacking defences on real data: plain vs --length_debias vs a head ensemble, SmolLM2 LoRA on HH-harmless.

    python bench/hh_robust.py                  # every run not yet done, then the tables (about 1 h on 2 cores)
    python bench/hh_robust.py --runs plain debias
    python bench/hh_robust.py --table          # only rebuild bench/results/hh_robust.{json,md}

Data: the hash split of the HH-harmless dev pairs that bench/hh_recipe.py writes (1,493 training,
307 validation pairs). Every run trains on the first 300 training pairs with the shipped recipe
(configs/train_smollm2_hh_best.yaml: SmolLM2-135M-Instruct, LoRA r16/a32 on all linear layers + head,
lr 3e-4 cosine, batch 4, one epoch, max length 512), fits its calibration temperature on the last 200
training pairs (never trained on), and is scored on the 307 validation pairs, which no run sees, with
`rewardkit eval --stress true --calibrated true`; the other runs are paired against the plain one
(`--baseline_scores`). Runs differ only in the flags of RUNS below.

Scoring cost: the plain and the ensemble checkpoint score the same validation conversations in one
process, alternating in rounds, one thread, CPU time (`scoring_cost` in the JSON): the ratio is the
ensemble's cost per pair relative to one model.

Each run's results are kept in outputs/hh-robust/runs/NAME/run.json, so a rerun resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from common import write_results
from hh_recipe import BEST_CONFIG, HH_DEV, ROOT, SPLIT, write_split

RESULTS = ROOT / "bench" / "results"
OUT = ROOT / "outputs" / "hh-robust"
TRAIN_PAIRS, CALIBRATION_PAIRS = 300, 200
COMMON = [
    "--train_file_dir",
    str(SPLIT / "train.jsonl"),
    "--validation_file_dir",
    str(OUT / "calibration.jsonl"),
    "--validation_split_percentage",
    "0",
    "--max_train_samples",
    str(TRAIN_PAIRS),
    "--calibrate",
    "true",
    "--eval_strategy",
    "no",
]
RUNS: dict[str, list[str]] = {
    "plain": [],
    "debias": ["--length_debias", "true"],
    "ensemble4": ["--ensemble_size", "4"],
}


def write_calibration() -> int:
    """The last CALIBRATION_PAIRS training-side lines: calibration pairs no run trains on."""
    lines = (SPLIT / "train.jsonl").read_text().splitlines(keepends=True)
    assert len(lines) >= TRAIN_PAIRS + CALIBRATION_PAIRS, "the training side is too small"
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "calibration.jsonl").write_text("".join(lines[-CALIBRATION_PAIRS:]))
    return CALIBRATION_PAIRS


def train(name: str, threads: int) -> float:
    """`rewardkit train` for one run; wall seconds."""
    cmd = [sys.executable, "-m", "rewardkit", "train", "--config", str(BEST_CONFIG)]
    cmd += COMMON + RUNS[name] + ["--output_dir", str(OUT / "runs" / name / "model")]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS=str(threads))
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)
    return time.perf_counter() - start


def evaluate(name: str) -> dict:
    """`rewardkit eval --stress --calibrated` on the validation pairs, paired against the plain run."""
    out = OUT / "runs" / name / "eval"
    if (out / "results.json").exists():  # evaluated already (e.g. beside another run's training)
        return json.loads((out / "results.json").read_text())
    cmd = [sys.executable, "-m", "rewardkit", "eval", "--model", str(OUT / "runs" / name / "model")]
    cmd += ["--data", str(SPLIT / "validation.jsonl"), "--output_dir", str(out), "--max_length", "512"]
    cmd += ["--stress", "true", "--calibrated", "true"]
    plain = OUT / "runs" / "plain" / "eval" / "results.json"
    if name != "plain" and plain.exists():
        cmd += ["--baseline_scores", str(plain)]
    subprocess.run(cmd, check=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    return json.loads((out / "results.json").read_text())


def trained(name: str, threads: int) -> dict:
    """Train unless train.json says it was done; the training record."""
    out = OUT / "runs" / name
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "train.json").exists():
        (out / "train.json").write_text(json.dumps({"wall_s": train(name, threads), "threads": threads}))
    return json.loads((out / "train.json").read_text())


def run(name: str, threads: int) -> dict:
    """Train (or resume), evaluate, keep the summary in run.json."""
    out = OUT / "runs" / name
    record = out / "run.json"
    if record.exists():
        return json.loads(record.read_text())
    done = trained(name, threads)
    config = json.loads((out / "model" / "config.json").read_text())
    summary = {
        "name": name,
        "flags": RUNS[name],
        "train_wall_s": done["wall_s"],
        "train_threads": done.get("threads"),
        "temperature": config.get("reward_temperature"),
        "eval": summarize(evaluate(name)),
    }
    record.write_text(json.dumps(summary, indent=2))
    return summary


def answer_length_pearson(results: dict) -> dict:
    """Pearson/Spearman of the rewards with each answer's own token count (SmolLM2's tokenizer, no special
    tokens). `rewardkit eval`'s length section counts the whole conversation's tokens, prompt included."""
    from hh_recipe import MODEL_CACHE
    from transformers import AutoTokenizer

    from rewardkit.assets import smollm2_safetensors
    from rewardkit.data.loading import load_pairs
    from rewardkit.eval import metrics as M

    tokenizer = AutoTokenizer.from_pretrained(smollm2_safetensors(MODEL_CACHE))
    pairs, _ = load_pairs(SPLIT / "validation.jsonl")
    by_line = {p.source.rsplit(":", 1)[1]: p for p in pairs}
    lengths, rewards = [], []
    for item in results["items"]:
        pair = by_line[item["source"].rsplit(":", 1)[1]]
        for text, reward in (
            (pair.chosen, item["chosen_scores"][0]),
            (pair.rejected, item["rejected_scores"][0]),
        ):
            lengths.append(len(tokenizer(text, add_special_tokens=False).input_ids))
            rewards.append(reward)
    return {
        "pearson": M.pearson(lengths, rewards),
        "spearman": M.spearman(lengths, rewards),
        "answers": len(lengths),
    }


def summarize(results: dict) -> dict:
    """The figures the tables quote, from eval's results.json."""
    s = results["summary"]
    length = s.get("length_bias") or {}
    stress = s.get("stress") or {}
    return {
        "n_pairs": s["n_pairs"],
        "accuracy": s["accuracy"],
        "vs_plain": s.get("baseline"),
        "pearson_reward_length": length.get("pearson"),  # conversation tokens (eval's length unit)
        "answer_length": answer_length_pearson(results),
        "spearman_reward_length": length.get("spearman"),
        "ece": (s.get("calibration") or {}).get("ece"),
        "calibrated": {
            k: (s.get("calibrated") or {}).get(k) for k in ("temperature", "ece_before", "ece_after")
        },
        "stress": {
            name: {k: p.get(k) for k in ("n", "accuracy", "plain_accuracy", "drop")}
            for name, p in (stress.get("perturbations") or {}).items()
        },
        "ensemble": s.get("ensemble"),
    }


def scoring_cost(rounds: int, pairs: int) -> dict:
    """CPU seconds per pair of the plain and the ensemble checkpoint, in alternating rounds, one thread."""
    import torch

    from rewardkit import load_reward_model
    from rewardkit.data.loading import load_pairs

    torch.set_num_threads(1)
    items, _ = load_pairs(SPLIT / "validation.jsonl")
    items = items[:pairs]
    models = {
        n: load_reward_model(str(OUT / "runs" / n / "model"), max_length=512) for n in ("plain", "ensemble4")
    }
    cpu = {n: 0.0 for n in models}
    per_round = max(1, len(items) // rounds)
    for r in range(rounds):
        chunk = items[r * per_round : (r + 1) * per_round]
        order = list(models) if r % 2 == 0 else list(reversed(models))
        for name in order:
            start = time.process_time()
            models[name].score_pairs(
                [p.prompt for p in chunk], [p.chosen for p in chunk], [p.rejected for p in chunk]
            )
            cpu[name] += time.process_time() - start
    n = per_round * rounds
    return {
        "pairs": n,
        "threads": 1,
        "cpu_s_per_pair": {k: v / n for k, v in cpu.items()},
        "ratio_ensemble_to_plain": cpu["ensemble4"] / cpu["plain"],
    }


def _ci(stat: dict | None, scale: float = 100.0, sign: str = "") -> str:
    if not stat:
        return "-"
    return f"{scale * stat['value']:{sign}.1f} [{scale * stat['ci_low']:{sign}.1f}, {scale * stat['ci_high']:{sign}.1f}]"


def markdown(table: dict) -> str:
    lines = [
        "| run | flags | training wall (min) | accuracy [95% CI] | minus plain, paired [95% CI] | "
        "Pearson(reward, answer tokens) | Pearson(reward, length) in eval's unit* | ECE → calibrated (T) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in table["runs"]:
        e, c = r["eval"], r["eval"]["calibrated"]
        base = (e.get("vs_plain") or {}).get("diff")
        ece = (
            "-"
            if c["ece_before"] is None
            else f"{c['ece_before']:.3f} → {c['ece_after']:.3f} ({c['temperature']:.3g})"
        )
        lines.append(
            f"| {r['name']} | {' '.join(r['flags']) or '(none)'} | {r['train_wall_s'] / 60:.1f} | {_ci(e['accuracy'])} | "
            f"{_ci(base, sign='+')} | {e['answer_length']['pearson']:+.3f} | {e['pearson_reward_length']:+.3f} | {ece} |"
        )
    lines += [
        "",
        "*conversation tokens, prompt included, for evals run before `rewardkit eval` counted answer tokens "
        "(this table's runs); answer tokens after.",
        "",
        "| perturbation | " + " | ".join(f"{r['name']}: accuracy, drop" for r in table["runs"]) + " |",
    ]
    lines.append("|---|" + "---:|" * len(table["runs"]))
    names = sorted({p for r in table["runs"] for p in r["eval"]["stress"]})
    for p in names:
        cells = []
        for r in table["runs"]:
            st = r["eval"]["stress"].get(p) or {}
            cells.append(
                f"{_ci(st.get('accuracy'))}, {_ci(st.get('drop'), sign='+')}" if st.get("n") else "-"
            )
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    ens = next((r["eval"]["ensemble"] for r in table["runs"] if r["eval"].get("ensemble")), None)
    if ens:
        auc = ens.get("disagreement_auroc_ci") or {"value": ens["disagreement_auroc"], "ci_low": None}
        interval = "" if auc["ci_low"] is None else f" [{auc['ci_low']:.3f}, {auc['ci_high']:.3f}]"
        lines += [
            "",
            f"Ensemble ({ens['members']} heads): disagreement AUROC for the {ens['n_wrong']} of {ens['n_pairs']} "
            f"pairs ranked wrong: {auc['value']:.3f}{interval}",
            "",
            "| ensemble score | accuracy [95% CI] |",
            "|---|---:|",
        ]
        lines += [f"| {k} | {_ci(v)} |" for k, v in ens["accuracy"].items()]
    cost = table.get("scoring_cost")
    if cost:
        lines.append(
            f"\nScoring cost per pair, ensemble / one model: {cost['ratio_ensemble_to_plain']:.3f}x "
            f"({cost['pairs']} validation pairs, one thread, CPU time, alternating rounds)."
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--table", action="store_true", help="only rebuild the tables from the runs done")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--cost_pairs", type=int, default=100, help="validation pairs timed for the scoring cost"
    )
    args = parser.parse_args(argv)
    split = write_split()
    write_calibration()
    if not args.table:
        for name in args.runs:  # all trainings first, then the evals, plain first (the others pair with it)
            trained(name, args.threads)
        for name in sorted(args.runs, key=lambda n: n != "plain"):
            run(name, args.threads)
    done = [OUT / "runs" / n / "run.json" for n in RUNS]
    table: dict = {
        "data": str(HH_DEV),
        "split": split,
        "train_pairs": TRAIN_PAIRS,
        "calibration_pairs": CALIBRATION_PAIRS,
        "runs": [json.loads(p.read_text()) for p in done if p.exists()],
    }
    cost_file = OUT / "scoring_cost.json"
    if not cost_file.exists() and all(
        (OUT / "runs" / n / "run.json").exists() for n in ("plain", "ensemble4")
    ):
        cost_file.write_text(json.dumps(scoring_cost(rounds=10, pairs=args.cost_pairs), indent=2))
    if cost_file.exists():
        table["scoring_cost"] = json.loads(cost_file.read_text())
    write_results(RESULTS / "hh_robust", table, markdown(table))
    return table


if __name__ == "__main__":
    main()
