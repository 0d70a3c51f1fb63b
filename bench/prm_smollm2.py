"""A SmolLM2 LoRA process reward model on real and synthetic step labels, evaluated on solutions it never saw.

    python bench/prm_smollm2.py            # train (about 10 minutes on 2 idle cores), evaluate, write the table
    python bench/prm_smollm2.py --table    # only rebuild bench/results/prm_smollm2.{json,md}

Data (written to outputs/prm-smollm2/data/):
- synthetic: `python -m rewardkit.demo.synthetic_steps` problems, seed 0 for training (300 problems,
  600 solutions), seed 1 held out (100 problems, 200 solutions);
- real: the shared Math-Shepherd GSM8K sample (../shared/data/math-shepherd-gsm8k/dev.trl.jsonl,
  60 solutions), split by row: odd rows (1, 3, ..) train, even rows left out (30 each).

Training: `rewardkit train --config configs/train_smollm2_prm.yaml` (SmolLM2-135M-Instruct, LoRA
r16/a32 on all linear layers + head, lr 3e-4, batch 8, one epoch, max length 512) on the synthetic
and the real training part, no validation split. Evaluation: `rewardkit eval` on each left-out part
(step AUROC, bad-step F1, ProcessBench first-error F1, with bootstrap intervals; threshold 0.5 given).
The training run is kept (outputs/prm-smollm2/train.json), so a rerun only evaluates.
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
SHEPHERD = ROOT.parent / "shared" / "data" / "math-shepherd-gsm8k" / "dev.trl.jsonl"
CONFIG = ROOT / "configs" / "train_smollm2_prm.yaml"
OUT = ROOT / "outputs" / "prm-smollm2"
DATA = OUT / "data"
SYNTHETIC_TRAIN, SYNTHETIC_HELDOUT = 300, 100  # problems (two solutions each)


def write_data() -> dict:
    """The four files; their solution counts."""
    from rewardkit.demo.synthetic_steps import make_step_set, to_trl_row

    DATA.mkdir(parents=True, exist_ok=True)
    for name, problems, seed in (
        ("synthetic_train", SYNTHETIC_TRAIN, 0),
        ("synthetic_heldout", SYNTHETIC_HELDOUT, 1),
    ):
        rows = [json.dumps(to_trl_row(e)) + "\n" for e in make_step_set(problems, seed=seed)]
        (DATA / f"{name}.jsonl").write_text("".join(rows))
    lines = SHEPHERD.read_text().splitlines(keepends=True)
    (DATA / "shepherd_train.jsonl").write_text("".join(lines[0::2]))  # rows 1, 3, 5, ..
    (DATA / "shepherd_leftout.jsonl").write_text("".join(lines[1::2]))  # rows 2, 4, 6, ..
    return {p.stem: sum(1 for _ in p.open()) for p in sorted(DATA.glob("*.jsonl"))}


def train(threads: int) -> dict:
    record = OUT / "train.json"
    if record.exists():
        return json.loads(record.read_text())
    cmd = [
        sys.executable,
        "-m",
        "rewardkit",
        "train",
        "--config",
        str(CONFIG),
        "--output_dir",
        str(OUT / "model"),
    ]
    cmd += ["--train_file_dir", f"{DATA / 'synthetic_train.jsonl'},{DATA / 'shepherd_train.jsonl'}"]
    cmd += ["--validation_split_percentage", "0", "--eval_strategy", "no"]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS=str(threads))
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)
    done = {"wall_s": time.perf_counter() - start, "threads": threads}
    metrics = OUT / "model" / "train_results.json"
    if metrics.exists():
        done["train_results"] = json.loads(metrics.read_text())
    record.write_text(json.dumps(done, indent=2))
    return done


def evaluate(name: str) -> dict:
    out = OUT / "eval" / name
    cmd = [
        sys.executable,
        "-m",
        "rewardkit",
        "eval",
        "--model",
        str(OUT / "model"),
        "--data",
        str(DATA / f"{name}.jsonl"),
    ]
    cmd += ["--output_dir", str(out), "--step_threshold", "0.5"]
    subprocess.run(cmd, check=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    s = json.loads((out / "results.json").read_text())["summary"]
    return {
        "n_solutions": s["n_solutions"],
        "n_steps": s["n_steps"],
        "n_bad_steps": s["n_bad_steps"],
        "best_of_n": s["best_of_n"],
        "steps": s["steps"],
        "first_error": {k: v for k, v in s["first_error"].items() if k != "confusion"},
    }


def _ci(stat: dict, pct: bool = False) -> str:
    if stat.get("value") is None or stat["value"] != stat["value"] or stat.get("ci_low") is None:
        return (
            "- (undefined)"
            if stat.get("value") is None or stat["value"] != stat["value"]
            else f"{stat['value']:.3f}"
        )
    f = 100.0 if pct else 1.0
    fmt = ".1f" if pct else ".3f"
    return f"{f * stat['value']:{fmt}} [{f * stat['ci_low']:{fmt}}, {f * stat['ci_high']:{fmt}}]"


def markdown(table: dict) -> str:
    lines = [
        f"SmolLM2-135M-Instruct LoRA PRM, trained {table['train']['wall_s'] / 60:.1f} min "
        f"({table['train']['threads']} threads) on {table['data']['synthetic_train']} synthetic + "
        f"{table['data']['shepherd_train']} Math-Shepherd solutions.",
        "",
        "| left-out data | solutions | steps | step AUROC [95% CI] | position alone [95% CI] | step accuracy [95% CI] | "
        "bad-step F1 [95% CI] | ProcessBench F1 [95% CI] |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, e in table["eval"].items():
        st, fe = e["steps"], e["first_error"]
        lines.append(
            f"| {name} | {e['n_solutions']} | {e['n_steps']} ({e['n_bad_steps']} bad) | {_ci(st['auroc'])} | {_ci(st.get('position_auroc') or {'value': None})} | {_ci(st['accuracy'], True)} | "
            f"{_ci(st['bad_f1'])} | {_ci(fe['processbench_f1'])} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--table", action="store_true", help="only rebuild the table from the saved results")
    args = parser.parse_args(argv)
    data = write_data()
    trained = train(args.threads) if not args.table else json.loads((OUT / "train.json").read_text())
    evals = OUT / "evals.json"
    if not evals.exists() or not args.table:
        evals.write_text(
            json.dumps({n: evaluate(n) for n in ("synthetic_heldout", "shepherd_leftout")}, indent=2)
        )
    table = {"data": data, "train": trained, "eval": json.loads(evals.read_text())}
    write_results(RESULTS / "prm_smollm2", table, markdown(table))
    return table


if __name__ == "__main__":
    main()
