"""PRM training speed: the layout of TRL's last PRMTrainer vs rewardkit's packed PRM batches.

    python bench/prm_vs_trl_layout.py --quick     # tiny random Llama with SmolLM2's vocabulary (a minute)
    python bench/prm_vs_trl_layout.py             # SmolLM2-135M-Instruct, 10 steps of 8 solutions

TRL 1.16 no longer ships `PRMTrainer`, so its layout is written here as the baseline: one solution
per row, right-padded to the batch's longest, labels on the separator tokens (-100 elsewhere) and
the model's own token-classification cross-entropy. rewardkit packs several solutions per row
without padding (block-diagonal mask, positions restarting) and computes the loss on the separator
positions only. Same model weights (two copies of one initialisation), same data (synthetic
step-labelled solutions and the shared Math-Shepherd sample, shuffled), same batches, same AdamW
step; the two methods alternate batch by batch in one process, so machine noise hits both alike.
The losses must agree at every step (exact layouts): the max difference is reported.
Results: bench/results/prm_vs_trl_layout[_quick].{json,md}.
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import time
from pathlib import Path

import torch
from common import tiny_llama_config, write_results

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SHEPHERD = ROOT.parent / "shared" / "data" / "math-shepherd-gsm8k" / "dev.trl.jsonl"
SMOLLM2 = (
    Path(os.environ.get("REWARDKIT_TEST_CACHE", ROOT / ".cache" / "test-models")) / "smollm2-135m-instruct"
)


def solutions(tokenizer, separator_id: int, n: int, max_length: int, seed: int) -> list[dict]:
    """`n` tokenized solutions: synthetic ones and the Math-Shepherd sample, shuffled."""
    from rewardkit.data.loading import DropReport
    from rewardkit.data.steps import load_step_examples
    from rewardkit.demo.synthetic_steps import make_step_set
    from rewardkit.train.prm_data import tokenize_step_examples

    examples = make_step_set(n, seed=seed)
    if SHEPHERD.is_file():
        examples += load_step_examples(SHEPHERD)[0]
    random.Random(seed).shuffle(examples)
    ds, _ = tokenize_step_examples(tokenizer, examples[:n], separator_id, max_length, DropReport())
    return [ds[i] for i in range(len(ds))]


def trl_layout_step(model, features, pad_id, max_row_tokens=None):
    """TRL PRMTrainer's layout: padded rows, token labels -100 but at separators, the model's own loss."""
    from rewardkit.train.prm_data import StepCollator

    batch = StepCollator(pad_token_id=pad_id)(features)
    labels = torch.full(batch["input_ids"].shape, -100, dtype=torch.long)
    labels.view(-1)[batch["label_index"]] = (batch["labels"] >= 0.5).long()
    loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels).loss
    return loss, batch["input_ids"].numel()


def rewardkit_step(model, features, pad_id, max_row_tokens=2048):
    from rewardkit.train.prm import prm_step_logits, soft_step_loss
    from rewardkit.train.prm_data import PackedStepCollator

    batch = PackedStepCollator(pad_token_id=pad_id, max_row_tokens=max_row_tokens)(features)
    hard = (batch["labels"] >= 0.5).float()  # the baseline's labels are classes
    return soft_step_loss(prm_step_logits(model, batch), hard), batch["input_ids"].numel()


def build(args):
    from transformers import AutoTokenizer, LlamaForTokenClassification

    from rewardkit.core.loading import ensure_pad_token
    from rewardkit.core.steps import add_step_separator, load_token_classifier

    tokenizer = AutoTokenizer.from_pretrained(SMOLLM2)
    if args.quick:
        torch.manual_seed(0)
        config = tiny_llama_config(len(tokenizer), 2, tokenizer.pad_token_id, classifier_dropout=0.0)
        config._attn_implementation = "sdpa"
        model = LlamaForTokenClassification(config)
    else:
        model = load_token_classifier(str(SMOLLM2))
    ensure_pad_token(tokenizer, model)
    sep = add_step_separator(tokenizer, model)
    return tokenizer, model, sep


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny random Llama instead of SmolLM2-135M")
    parser.add_argument(
        "--steps", type=int, default=None, help="optimizer steps (default 10; 6 with --quick)"
    )
    parser.add_argument("--batch_size", type=int, default=8, help="solutions per step")
    parser.add_argument("--max_length", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max_row_tokens", type=int, default=2048, help="rewardkit: tokens per packed row")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    steps = args.steps or (6 if args.quick else 10)
    tokenizer, model, sep = build(args)
    data = solutions(tokenizer, sep, steps * args.batch_size, args.max_length, args.seed)
    models = {"trl_layout": model.train(), "rewardkit": copy.deepcopy(model).train()}
    optims = {k: torch.optim.AdamW(m.parameters(), lr=1e-5) for k, m in models.items()}
    runs = {"trl_layout": trl_layout_step, "rewardkit": rewardkit_step}
    record = {k: {"seconds": [], "tokens": 0, "losses": []} for k in models}
    for step in range(steps):
        feats = data[step * args.batch_size : (step + 1) * args.batch_size]
        for name in ("trl_layout", "rewardkit") if step % 2 == 0 else ("rewardkit", "trl_layout"):
            start = time.perf_counter()
            loss, tokens = runs[name](models[name], feats, tokenizer.pad_token_id, args.max_row_tokens)
            loss.backward()
            optims[name].step()
            optims[name].zero_grad()
            record[name]["seconds"].append(time.perf_counter() - start)
            record[name]["tokens"] += tokens
            record[name]["losses"].append(loss.item())
    timed = slice(1, None)  # the first step warms up
    out = {
        "config": {
            "model": "tiny random Llama (2 layers, 64 wide)" if args.quick else "SmolLM2-135M-Instruct",
            "steps": steps,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "threads": args.threads,
            "torch": torch.__version__,
            "solutions": len(data),
            "max_row_tokens": args.max_row_tokens,
        },
        "max_abs_loss_diff": max(
            abs(a - b) for a, b in zip(record["trl_layout"]["losses"], record["rewardkit"]["losses"])
        ),
    }
    for name, r in record.items():
        secs = sum(r["seconds"][timed])
        out[name] = {
            "solutions_per_second": args.batch_size * (steps - 1) / secs,
            "tokens_computed": r["tokens"],
            "losses": r["losses"],
        }
    out["speedup"] = out["rewardkit"]["solutions_per_second"] / out["trl_layout"]["solutions_per_second"]
    out["token_ratio"] = out["trl_layout"]["tokens_computed"] / out["rewardkit"]["tokens_computed"]
    write_results(
        RESULTS / ("prm_vs_trl_layout_quick" if args.quick else "prm_vs_trl_layout"), out, markdown(out)
    )
    return out


def markdown(r: dict) -> str:
    c = r["config"]
    return "\n".join(
        [
            f"PRM training, {c['model']}: {c['steps']} steps of {c['batch_size']} solutions, max length "
            f"{c['max_length']}, {c['threads']} threads, torch {c['torch']}; methods alternating batch by batch.",
            "",
            "| | TRL PRMTrainer layout | rewardkit | ratio |",
            "|---|---:|---:|---:|",
            f"| solutions/s (steps 2-{c['steps']}) | {r['trl_layout']['solutions_per_second']:.3f} | "
            f"{r['rewardkit']['solutions_per_second']:.3f} | **{r['speedup']:.2f}x** |",
            f"| tokens computed (padding included) | {r['trl_layout']['tokens_computed']:,} | "
            f"{r['rewardkit']['tokens_computed']:,} | {r['token_ratio']:.2f}x |",
            f"| max abs loss difference over the steps | | | {r['max_abs_loss_diff']:.1e} |",
            "",
        ]
    )


if __name__ == "__main__":
    main()
