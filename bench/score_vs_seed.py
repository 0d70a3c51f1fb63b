"""Scoring pairs: the seed's one-at-a-time loop against rewardkit's batched `score` and prefix-shared `score_pairs`.

    python bench/score_vs_seed.py               # 200 HH-RLHF dev pairs, SmolLM2-135M with a seeded random head
    python bench/score_vs_seed.py --pairs 50
    python bench/score_vs_seed.py --quick       # a tiny random Llama (SmolLM2's tokenizer): seconds

One process, the same checkpoint (saved to a temporary folder and loaded by each side), the same
pairs, fp32 on CPU with `--threads` intra-op threads. The pairs are split into rounds and each round
runs all three methods, in a rotating order, so that a busy machine slows them alike:

1. seed: per pair, `apply_chat_template(conv, tokenize=True, return_tensors="pt", return_dict=True)`
   and `rm(**enc).logits[0][0].item()` for the chosen, then the rejected conversation (batch 1);
2. rewardkit score: `load_reward_model(...).score(chosen + rejected conversations)` (batched by a
   token budget, longest first): what `rewardkit score` does with conversation rows;
3. rewardkit score_pairs: the same model with prefix sharing (its default): each pair's prompt runs once
   and both answers continue from its KV cache: what `rewardkit score` does with pair rows.

Reported: pairs/s and speedup over the seed loop by wall-clock time and by the process's CPU time,
and max |score - seed score| (must be <= 1e-4). Results go to bench/results/score_vs_seed.{json,md}.

Why CPU time, and one thread by default: on a shared, oversubscribed machine the wall clock mostly
measures waiting for a core, and with two intra-op threads every operator waits for the slower
thread (measured on a 2-core box with ~8 runnable processes: a small linear layer took 25x longer
with 2 threads than with 1), which penalises the seed loop's many small calls. With one thread the
process's CPU time is the work done, and pairs per CPU-second is the throughput of one idle core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import tiny_llama_config, write_results

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
HH_DEV = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless" / "dev.jsonl"
MODEL_CACHE = Path(os.environ.get("REWARDKIT_TEST_CACHE", ROOT / ".cache" / "test-models"))
METHODS = ("seed", "rewardkit score", "rewardkit score_pairs (prefix sharing)")
TOLERANCE = 1e-4


def smollm2_folder() -> Path:
    """SmolLM2-135M-Instruct as a safetensors causal-LM folder (converted once, atomically, as the tests do)."""
    from rewardkit.assets import smollm2_safetensors

    return smollm2_safetensors(MODEL_CACHE)


def make_checkpoint(out: Path, quick: bool) -> str:
    """A sequence classifier with a seeded random head (SmolLM2, or a tiny Llama with its tokenizer)."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        LlamaForSequenceClassification,
    )

    source = smollm2_folder()
    tokenizer = AutoTokenizer.from_pretrained(source)
    torch.manual_seed(0)
    if quick:
        config = tiny_llama_config(len(tokenizer), 1, tokenizer.pad_token_id, max_position_embeddings=8192)
        model = LlamaForSequenceClassification(config)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1, dtype=torch.float32)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return "tiny random Llama (2 layers, hidden 64; SmolLM2 tokenizer)" if quick else "SmolLM2-135M-Instruct"


def read_pairs(path: Path, n: int) -> list:
    from rewardkit.data.formats import SkipRow, normalize_row

    pairs = []
    with path.open() as f:
        for lineno, line in enumerate(f, 1):
            try:
                pairs.append(normalize_row(json.loads(line), source=f"{path.name}:{lineno}"))
            except SkipRow:
                continue
            if len(pairs) == n:
                break
    return pairs


def seed_loop(rm, tok, pairs) -> list[float]:
    """The seed's code: one conversation at a time, chosen then rejected."""
    scores = []
    for pair in pairs:
        for conv in (pair.chosen_messages(), pair.rejected_messages()):
            enc = tok.apply_chat_template(conv, tokenize=True, return_tensors="pt", return_dict=True)
            with torch.no_grad():
                scores.append(rm(**enc).logits[0][0].item())
    return scores


def rewardkit_score(rm, pairs) -> list[float]:
    scores = rm.score([p.chosen_messages() for p in pairs] + [p.rejected_messages() for p in pairs])
    n = len(pairs)
    return [s for i in range(n) for s in (scores[i], scores[n + i])]


def rewardkit_score_pairs(rm, pairs) -> list[float]:
    chosen, rejected = rm.score_pairs(
        [p.prompt_messages() for p in pairs], [p.chosen for p in pairs], [p.rejected for p in pairs]
    )
    return [s for c, r in zip(chosen, rejected) for s in (c, r)]


def token_counts(tokenizer, pairs) -> dict[str, int]:
    from rewardkit.data.tokenize import common_prefix_len, encode

    total = shared = 0
    for p in pairs:
        c, r = encode(tokenizer, p.chosen_messages()), encode(tokenizer, p.rejected_messages())
        total += len(c) + len(r)
        shared += min(common_prefix_len(c, r), min(len(c), len(r)) - 1)
    return {"tokens_seed": total, "tokens_prefix_shared": total - shared}


def timed_rounds(calls: dict, pairs: list, round_pairs: int) -> tuple[dict, dict, dict]:
    """Scores, wall seconds and CPU seconds per method, the methods taking turns round by round."""
    scores: dict[str, list[float]] = {m: [] for m in calls}
    wall, cpu = dict.fromkeys(calls, 0.0), dict.fromkeys(calls, 0.0)
    rounds = [pairs[i : i + round_pairs] for i in range(0, len(pairs), round_pairs)]
    methods = list(calls)
    for k, chunk in enumerate(rounds):
        for method in methods[k % 3 :] + methods[: k % 3]:
            start, cpu_start = time.perf_counter(), time.process_time()
            scores[method] += calls[method](chunk)
            wall[method] += time.perf_counter() - start
            cpu[method] += time.process_time() - cpu_start
        done = ", ".join(f"{m} {wall[m]:.0f}s wall / {cpu[m]:.0f}s CPU" for m in methods)
        print(f"round {k + 1}/{len(rounds)}: {done}", flush=True)
    return scores, wall, cpu


def run(args) -> dict:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rewardkit.scorers.load import load_reward_model

    torch.set_num_threads(args.threads)
    pairs = read_pairs(Path(args.data), args.pairs)
    with tempfile.TemporaryDirectory() as tmp:
        model_name = make_checkpoint(Path(tmp), args.quick)
        seed_rm = AutoModelForSequenceClassification.from_pretrained(tmp, num_labels=1).eval()
        seed_tok = AutoTokenizer.from_pretrained(tmp)
        plain = load_reward_model(
            tmp, kind="seq_classifier", device_map="cpu", batch_tokens=args.batch_tokens
        )
        plain.prefix_sharing = False  # method 2 scores every conversation in full
        shared = load_reward_model(
            tmp, kind="seq_classifier", device_map="cpu", batch_tokens=args.batch_tokens
        )
    calls = {
        METHODS[0]: lambda ps: seed_loop(seed_rm, seed_tok, ps),
        METHODS[1]: lambda ps: rewardkit_score(plain, ps),
        METHODS[2]: lambda ps: rewardkit_score_pairs(shared, ps),
    }
    for call in calls.values():  # warm-up (allocator, first-call costs), not timed
        call(pairs[:2])
    scores, wall, cpu = timed_rounds(calls, pairs, args.round_pairs)
    results = {}
    for method in METHODS:
        results[method] = {
            "seconds": round(wall[method], 2),
            "pairs_per_second": round(len(pairs) / wall[method], 3),
            "speedup": round(wall[METHODS[0]] / wall[method], 2),
            "cpu_seconds": round(cpu[method], 2),
            "pairs_per_cpu_second": round(len(pairs) / cpu[method], 3),
            "cpu_speedup": round(cpu[METHODS[0]] / cpu[method], 2),
            "max_abs_diff_vs_seed": max(abs(a - b) for a, b in zip(scores[method], scores[METHODS[0]])),
        }
    return {
        "model": model_name,
        "pairs": len(pairs),
        "data": str(args.data),
        "threads": args.threads,
        "round_pairs": args.round_pairs,
        "batch_tokens": args.batch_tokens,
        "dtype": "float32",
        "device": "cpu",
        **token_counts(plain.tokenizer, pairs),
        "methods": results,
        "identical_within_tolerance": all(r["max_abs_diff_vs_seed"] <= TOLERANCE for r in results.values()),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": __import__("transformers").__version__,
        },
        "cpu": platform.processor() or platform.machine(),
        "cpus_visible": os.cpu_count(),
    }


def markdown(report: dict) -> str:
    lines = [
        f"# score vs seed: {report['pairs']} HH-RLHF dev pairs, {report['model']}, fp32 CPU, "
        f"{report['threads']} threads",
        "",
        f"Tokens read: seed loop {report['tokens_seed']}, with prefix sharing {report['tokens_prefix_shared']}. "
        f"Methods interleaved in rounds of {report['round_pairs']} pairs; batch_tokens {report['batch_tokens']}.",
        "",
        "| method | wall s | pairs/s | speedup | CPU s | pairs/CPU-s | CPU speedup | max abs diff vs seed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method, r in report["methods"].items():
        lines.append(
            f"| {method} | {r['seconds']} | {r['pairs_per_second']} | {r['speedup']}x | {r['cpu_seconds']} | "
            f"{r['pairs_per_cpu_second']} | {r['cpu_speedup']}x | {r['max_abs_diff_vs_seed']:.2e} |"
        )
    verdict = "yes" if report["identical_within_tolerance"] else "NO"
    lines += ["", f"All scores within {TOLERANCE:g} of the seed loop: {verdict}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200, help="HH-RLHF dev pairs to score (default 200).")
    parser.add_argument(
        "--quick", action="store_true", help="A tiny random Llama instead of SmolLM2 (seconds)."
    )
    parser.add_argument("--data", default=str(HH_DEV), help="Pairs file (any format rewardkit reads).")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (default 1; see above)."
    )
    parser.add_argument(
        "--round_pairs", type=int, default=50, help="Pairs per round (each round runs all methods)."
    )
    parser.add_argument(
        "--batch_tokens", type=int, default=16384, help="rewardkit's padded tokens per forward."
    )
    parser.add_argument(
        "--out",
        default=None,
        help="Results path without suffix "
        "(default bench/results/score_vs_seed, or score_vs_seed_quick with --quick).",
    )
    args = parser.parse_args(argv)
    report = run(args)
    out = Path(args.out or RESULTS / ("score_vs_seed_quick" if args.quick else "score_vs_seed"))
    write_results(out, report, markdown(report))
    return 0 if report["identical_within_tolerance"] else 1


if __name__ == "__main__":
    sys.exit(main())
