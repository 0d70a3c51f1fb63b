"""Reward-model training throughput: TRL's RewardTrainer against `rewardkit train` with pair packing.

    python bench/train_vs_trl.py --quick            # tiny random Llama, a few steps (seconds to a minute)
    python bench/train_vs_trl.py                    # SmolLM2-135M-Instruct, 10 steps (6 minutes on 2 idle CPU cores)
    python bench/train_vs_trl.py --steps 20 --batch-size 4 --learning-rate 1e-5

Both trainers get the same model (same seed, so the same random score head), the same HH dev pairs
tokenized once with SmolLM2's chat template, the same order (sequential sampler), batch size,
learning rate, schedule and step count, fp32, full fine-tuning, no gradient checkpointing.

Each trainer runs in its own subprocess, so that its peak memory (RSS sampled every 20 ms during
training) is its own, and the two take turns step by step (each waits for a go from this process
before a step; the first to go alternates), so that a busy machine slows both alike. Reported per
trainer: pairs/s over the steps after the first (a step's time is its collation plus the optimizer
step, forward and backward), tokens actually computed (padding included), peak memory and the loss
at every step; then a forward+backward timing of both layouts in this process on the same batches,
alternating; and the static token counts on `--static-pairs` HH dev pairs. trl is imported only here
(pip install trl); rewardkit does not depend on it. Results: bench/results/train_vs_trl[_quick].{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
from common import tiny_llama_config, write_results

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
HH_DEV = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless" / "dev.jsonl"
MODEL_CACHE = Path(os.environ.get("REWARDKIT_TEST_CACHE", ROOT / ".cache" / "test-models"))


def smollm2_dir() -> Path:
    """The SmolLM2 safetensors folder the tests cache, converted once (atomically) if missing."""
    from rewardkit.assets import smollm2_safetensors

    return smollm2_safetensors(MODEL_CACHE)


def tokenized_pairs(tokenizer, n: int, max_length: int) -> list[dict]:
    """The first `n` HH dev pairs that fit, as rewardkit's training rows (one chat template for both trainers)."""
    from rewardkit.data.loading import DropReport, load_pairs
    from rewardkit.data.tokenize import install_chat_template
    from rewardkit.train.data import tokenize_pairs

    install_chat_template(tokenizer, None)
    pairs, _ = load_pairs(HH_DEV)
    rows = tokenize_pairs(tokenizer, pairs[: n + n // 4], max_length, DropReport(), "tokenizing").to_list()
    return [
        {k: r[k] for k in ("input_ids_chosen", "input_ids_rejected", "prompt_length", "length")}
        for r in rows[:n]
    ]


def static_token_counts(rows: list[dict], batch_size: int) -> dict:
    """Tokens per layout over consecutive batches: TRL's 2B rows padded to the longest vs packed segments."""
    trl = one_per_row = padding_free = 0
    for i in range(0, len(rows) - len(rows) % batch_size, batch_size):
        batch = rows[i : i + batch_size]
        longest = max(max(len(r["input_ids_chosen"]), len(r["input_ids_rejected"])) for r in batch)
        segments = [
            len(r["input_ids_chosen"]) + len(r["input_ids_rejected"]) - r["prompt_length"] for r in batch
        ]
        trl += 2 * batch_size * longest
        one_per_row += batch_size * max(segments)
        padding_free += sum(segments)
    return {
        "pairs": len(rows) - len(rows) % batch_size,
        "batch_size": batch_size,
        "trl_tokens": trl,
        "packed_one_pair_per_row_tokens": one_per_row,
        "packed_padding_free_tokens": padding_free,
        "ratio_padding_free": trl / padding_free,
        "ratio_one_pair_per_row": trl / one_per_row,
    }


class CountingCollator:
    """Wraps a collator; keeps the token slots (padding included) and seconds of every batch it builds."""

    def __init__(self, inner):
        self.inner, self.tokens, self.seconds = inner, 0, []

    def __call__(self, features):
        start = time.perf_counter()
        batch = self.inner(features)
        self.seconds.append(time.perf_counter() - start)
        self.tokens += batch["input_ids"].numel()
        return batch


class PeakRSS:
    """Peak resident memory of this process while the `with` block runs, sampled every 20 ms."""

    def __enter__(self):
        import psutil

        self.proc, self.peak, self.running = psutil.Process(), 0, True
        self.before = self.proc.memory_info().rss
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.02)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()


def lockstep_timer():
    """A callback that waits for a line on stdin before each step and answers "@@step" after it."""
    from transformers import TrainerCallback

    class Lockstep(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []

        def on_step_begin(self, args, state, control, **kwargs):
            sys.stdin.readline()
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self.start)
            print("@@step", flush=True)

    return Lockstep()


def load_model(path: str, pad_token_id: int, seed: int):
    from transformers import set_seed

    from rewardkit.core.loading import load_sequence_classifier

    set_seed(seed)  # the random score head is drawn here: the same for both trainers
    model = load_sequence_classifier(path, dtype="float32", attn_implementation="sdpa")
    model.config.pad_token_id = pad_token_id
    return model


def run_worker(trainer_name: str, spec: dict) -> dict:
    """One training run (in a subprocess): times, tokens, peak memory and losses."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    torch.set_num_threads(spec["threads"])
    tokenizer = AutoTokenizer.from_pretrained(spec["tokenizer"])
    model = load_model(spec["model"], tokenizer.pad_token_id, spec["seed"])
    rows = json.loads(Path(spec["data"]).read_text())
    common = dict(
        output_dir=tempfile.mkdtemp(),
        per_device_train_batch_size=spec["batch_size"],
        learning_rate=spec["learning_rate"],
        max_steps=spec["steps"],
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=spec["seed"],
        train_sampling_strategy="sequential",
        gradient_checkpointing=False,
        bf16=False,
        fp16=False,
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    if trainer_name == "trl":
        from trl import RewardConfig, RewardTrainer
        from trl.trainer.reward_trainer import DataCollatorForPreference

        data = Dataset.from_list(
            [{"chosen_ids": r["input_ids_chosen"], "rejected_ids": r["input_ids_rejected"]} for r in rows]
        )
        collator = CountingCollator(DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id))
        args = RewardConfig(**common, max_length=spec["max_length"], disable_dropout=True)
        trainer = RewardTrainer(
            model=model, args=args, train_dataset=data, processing_class=tokenizer, data_collator=collator
        )
    else:
        from transformers import TrainingArguments

        from rewardkit.core.packing import supports_packing
        from rewardkit.train.packing import PackedPairCollator, packed_pair_rewards
        from rewardkit.train.trainer import RewardTrainer

        assert supports_packing(model), "packing is not exact for this model"
        collator = CountingCollator(PackedPairCollator(pad_token_id=tokenizer.pad_token_id))
        args = TrainingArguments(**common, remove_unused_columns=False)
        trainer = RewardTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            data_collator=collator,
            forward=packed_pair_rewards,
        )
    timer = lockstep_timer()
    trainer.add_callback(timer)
    with PeakRSS() as mem:
        trainer.train()
    steps = [t + c for t, c in zip(timer.times, collator.seconds)]
    timed = steps[1:] or steps  # the first step warms up allocators and kernels
    return {
        "trainer": trainer_name,
        "steps": len(steps),
        "pairs_per_s": spec["batch_size"] * len(timed) / sum(timed),
        "step_seconds": steps,
        "collate_seconds": collator.seconds,
        "tokens_computed": collator.tokens,
        "peak_rss_mb": mem.peak / 2**20,
        "rss_before_train_mb": mem.before / 2**20,
        "peak_rss_growth_mb": (mem.peak - mem.before) / 2**20,
        "losses": [h["loss"] for h in trainer.state.log_history if "loss" in h],
    }


def interleaved_timing(spec: dict, batches: int, rounds: int = 1) -> dict:
    """Forward + backward of the same batches in one process, TRL's layout and ours alternately."""
    from transformers import AutoTokenizer
    from trl.trainer.reward_trainer import DataCollatorForPreference

    from rewardkit.train.loss import bradley_terry_loss
    from rewardkit.train.packing import PackedPairCollator, packed_pair_rewards

    torch.set_num_threads(spec["threads"])
    tokenizer = AutoTokenizer.from_pretrained(spec["tokenizer"])
    model = load_model(spec["model"], tokenizer.pad_token_id, spec["seed"]).train()
    rows, size = json.loads(Path(spec["data"]).read_text()), spec["batch_size"]
    trl_collate = DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id)
    ours_collate = PackedPairCollator(pad_token_id=tokenizer.pad_token_id)

    def trl_step(batch):  # what trl's RewardTrainer.compute_loss runs
        chosen, rejected = model(**batch, use_cache=False).logits.squeeze(-1).chunk(2)
        return bradley_terry_loss(chosen, rejected)

    def ours_step(batch):
        return bradley_terry_loss(*packed_pair_rewards(model, batch))

    seconds: dict[str, list[float]] = {"trl": [], "rewardkit": []}
    for b in list(range(batches)) * rounds:
        features = rows[b * size : (b + 1) * size]
        plan = [("trl", trl_step, trl_collate), ("rewardkit", ours_step, ours_collate)]
        for name, step, collate in plan if b % 2 == 0 else plan[::-1]:
            batch = collate(
                [
                    {"chosen_ids": f["input_ids_chosen"], "rejected_ids": f["input_ids_rejected"], **f}
                    for f in features
                ]
            )
            start = time.perf_counter()
            step(batch).backward()
            seconds[name].append(time.perf_counter() - start)
            model.zero_grad(set_to_none=True)
    ratios = sorted(t / r for t, r in zip(seconds["trl"], seconds["rewardkit"]))
    return {
        "batches": batches,
        "rounds": rounds,
        "seconds": seconds,
        "speedup": sum(seconds["trl"]) / sum(seconds["rewardkit"]),
        "median_batch_speedup": ratios[len(ratios) // 2],
    }


def quick_model(tokenizer_dir: Path, out: Path) -> Path:
    """A tiny random Llama sequence classifier with SmolLM2's vocabulary, saved to `out`."""
    from transformers import AutoTokenizer, LlamaForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    config = tiny_llama_config(len(tokenizer), 1, tokenizer.pad_token_id, max_position_embeddings=2048)
    LlamaForSequenceClassification(config).save_pretrained(out)
    return out


def run_lockstep(spec_path: Path, steps: int, names=("trl", "rewardkit")) -> dict:
    """Both trainers in their own subprocesses, taking turns step by step; their result dicts."""
    procs, logs = {}, {}
    for name in names:
        logs[name] = tempfile.TemporaryFile("w+")
        procs[name] = subprocess.Popen(
            [sys.executable, __file__, "--worker", name, "--spec", str(spec_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=logs[name],
            text=True,
        )

    def read_until(name: str, prefix: str) -> str:
        for line in procs[name].stdout:
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        logs[name].seek(0)
        raise SystemExit(f"{name} run failed:\n{logs[name].read()[-4000:]}")

    for step in range(steps):
        for name in names if step % 2 == 0 else names[::-1]:
            procs[name].stdin.write("go\n")
            procs[name].stdin.flush()
            read_until(name, "@@step")
    results = {name: json.loads(read_until(name, "@@result ")) for name in names}
    for name in names:
        procs[name].wait()
    return results


def markdown(result: dict) -> str:
    runs, cfg, static = result["runs"], result["config"], result["static_tokens"]
    trl, ours = runs["trl"], runs["rewardkit"]
    lines = [
        f"# Reward training: TRL RewardTrainer vs rewardkit (pair packing), {cfg['model_name']}",
        "",
        f"{cfg['steps']} steps, batch {cfg['batch_size']}, lr {cfg['learning_rate']}, fp32, full fine-tuning, "
        f"max length {cfg['max_length']}, HH dev pairs, {cfg['threads']} CPU threads; torch {cfg['torch']}, "
        f"transformers {cfg['transformers']}, trl {cfg['trl']}.",
        "",
        "| | TRL | rewardkit (packed) | ratio |",
        "|---|---:|---:|---:|",
        f"| pairs/s (steps after the first, taking turns) | {trl['pairs_per_s']:.3f} | {ours['pairs_per_s']:.3f} | "
        f"{ours['pairs_per_s'] / trl['pairs_per_s']:.2f}× |",
        f"| fwd+bwd speed-up, same process, alternating (total; median batch) | | | "
        f"{result['interleaved']['speedup']:.2f}×; {result['interleaved']['median_batch_speedup']:.2f}× |",
        f"| tokens computed (padding included) | {trl['tokens_computed']} | {ours['tokens_computed']} | "
        f"{trl['tokens_computed'] / ours['tokens_computed']:.2f}× |",
        f"| peak RSS during training (MB) | {trl['peak_rss_mb']:.0f} | {ours['peak_rss_mb']:.0f} | |",
        f"| peak RSS growth over the loaded model (MB) | {trl['peak_rss_growth_mb']:.0f} | "
        f"{ours['peak_rss_growth_mb']:.0f} | |",
        f"| max abs loss difference over the steps | | | {result['max_abs_loss_diff']:.2e} |",
        "",
        "| step | TRL loss | rewardkit loss |",
        "|---:|---:|---:|",
    ]
    lines += [
        f"| {i + 1} | {a:.6f} | {b:.6f} |" for i, (a, b) in enumerate(zip(trl["losses"], ours["losses"]))
    ]
    lines += [
        "",
        f"Static token counts on {static['pairs']} HH dev pairs, batch {static['batch_size']}: TRL "
        f"{static['trl_tokens']}, packed padding-free {static['packed_padding_free_tokens']} "
        f"({static['ratio_padding_free']:.2f}×), packed one pair per row padded to the batch's longest "
        f"{static['packed_one_pair_per_row_tokens']} ({static['ratio_one_pair_per_row']:.2f}×).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny random Llama instead of SmolLM2-135M")
    parser.add_argument(
        "--steps", type=int, default=None, help="optimizer steps (default 10; 6 with --quick)"
    )
    parser.add_argument(
        "--interleaved-batches", type=int, default=4, help="batches timed side by side in one process"
    )
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=1e-5)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--static-pairs", type=int, default=800)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", choices=["trl", "rewardkit"], help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print("@@result " + json.dumps(run_worker(args.worker, json.loads(Path(args.spec).read_text()))))
        return {}

    import transformers
    import trl
    from transformers import AutoTokenizer

    steps = args.steps or (6 if args.quick else 10)
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    smollm2 = smollm2_dir()
    model_path = quick_model(smollm2, work / "tiny-llama") if args.quick else smollm2
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    rows = tokenized_pairs(tokenizer, max(args.static_pairs, steps * args.batch_size), args.max_length)
    static = static_token_counts(rows[: args.static_pairs], args.batch_size)
    print(
        f"static tokens on {static['pairs']} pairs: TRL/padding-free {static['ratio_padding_free']:.2f}×, "
        f"TRL/one-pair-per-row {static['ratio_one_pair_per_row']:.2f}×",
        flush=True,
    )
    train_rows = rows[: steps * args.batch_size]
    (work / "data.json").write_text(json.dumps(train_rows))
    spec = {
        "model": str(model_path),
        "tokenizer": str(smollm2),
        "data": str(work / "data.json"),
        "steps": steps,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "max_length": args.max_length,
        "seed": args.seed,
        "threads": args.threads,
    }
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps(spec))
    runs = run_lockstep(spec_path, steps)
    for name, run in runs.items():
        print(
            f"{name}: {run['pairs_per_s']:.3f} pairs/s, {run['tokens_computed']} tokens, "
            f"peak {run['peak_rss_mb']:.0f} MB",
            flush=True,
        )
    interleaved = interleaved_timing(
        spec, min(steps, args.interleaved_batches), rounds=5 if args.quick else 1
    )
    losses = zip(runs["trl"]["losses"], runs["rewardkit"]["losses"])
    result = {
        "config": {
            **spec,
            "model_name": "tiny random Llama (2 layers, 64 wide)" if args.quick else "SmolLM2-135M-Instruct",
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
        },
        "runs": runs,
        "interleaved": interleaved,
        "max_abs_loss_diff": max(abs(a - b) for a, b in losses),
        "static_tokens": static,
    }
    write_results(
        RESULTS / ("train_vs_trl_quick" if args.quick else "train_vs_trl"), result, markdown(result)
    )
    return result


if __name__ == "__main__":
    main()
