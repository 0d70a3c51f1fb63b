"""`rewardkit demo`: the whole train → score loop on built-in data and the packaged MiniLM, offline."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from rewardkit.config import STEP_ATTENTIONS
from rewardkit.data.schema import PreferencePair

logger = logging.getLogger("rewardkit.demo")


@dataclass
class DemoArguments:
    output_dir: str = field(
        default="outputs/demo", metadata={"help": "Where the data, checkpoints and model go."}
    )
    n_train: int = field(default=2000, metadata={"help": "Synthetic training pairs (seed 0)."})
    n_eval: int = field(default=400, metadata={"help": "Held-out synthetic pairs (seed 1)."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Training epochs."})
    learning_rate: float | None = field(
        default=None, metadata={"help": "Peak learning rate (default 1e-4; 2e-4 with --objective prm)."}
    )
    per_device_train_batch_size: int = field(default=16, metadata={"help": "Pairs per step."})
    max_length: int = field(default=256, metadata={"help": "Tokens per conversation."})
    use_peft: bool = field(default=False, metadata={"help": "LoRA instead of full fine-tuning."})
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Backbone (default: packaged MiniLM-L6)."}
    )
    seed: int = field(default=0, metadata={"help": "Random seed."})
    step_attention: str = field(
        default="causal",
        metadata={
            "help": "PRM: the encoder's attention (train's --step_attention).",
            "choices": list(STEP_ATTENTIONS),
        },
    )
    step_contrast_weight: float = field(
        default=10.0,
        metadata={"help": "PRM: weight of the step-contrast term (train's --step_contrast_weight)."},
    )
    objective: str = field(
        default="pairwise",
        metadata={
            "help": "pairwise (preference pairs), or prm: a process reward model on step-labelled solutions "
            "(n_train/n_eval then count solutions).",
            "choices": ["pairwise", "prm"],
        },
    )


def _write_jsonl(pairs: list[PreferencePair], path: Path) -> None:
    with path.open("w") as f:
        for p in pairs:
            f.write(
                json.dumps(
                    {
                        "prompt": p.prompt,
                        "chosen": [{"role": "assistant", "content": p.chosen}],
                        "rejected": [{"role": "assistant", "content": p.rejected}],
                        "subset": p.subset,
                    }
                )
                + "\n"
            )


def run_demo(args: DemoArguments) -> dict:
    """Generate data, train, report held-out accuracy, then score the seed article's apples example."""
    if args.learning_rate is None:
        args.learning_rate = 2e-4 if args.objective == "prm" else 1e-4
    if args.objective == "prm":
        from rewardkit.demo.prm import run_prm_demo

        return run_prm_demo(args)
    from transformers import TrainingArguments

    from rewardkit.assets import minilm_dir
    from rewardkit.config import DataArguments, ModelArguments, ScriptArguments
    from rewardkit.demo.synthetic import make_preference_set
    from rewardkit.train.run import run_train

    out = Path(args.output_dir)
    (out / "data").mkdir(parents=True, exist_ok=True)
    _write_jsonl(make_preference_set(args.n_train, seed=args.seed), out / "data" / "train.jsonl")
    _write_jsonl(make_preference_set(args.n_eval, seed=args.seed + 1), out / "data" / "heldout.jsonl")
    model_dir = out / "model"
    metrics = run_train(
        ModelArguments(model_name_or_path=args.model_name_or_path or str(minilm_dir())),
        DataArguments(
            train_file_dir=str(out / "data" / "train.jsonl"),
            validation_file_dir=str(out / "data" / "heldout.jsonl"),
            max_length=args.max_length,
        ),
        TrainingArguments(**_training_settings(args, model_dir)),
        ScriptArguments(use_peft=args.use_peft, template_name="auto"),
    )
    report = _evaluate(
        model_dir, out / "data" / "heldout.jsonl", out / "eval", args.seed, args.model_name_or_path
    )
    scores = _apples_scores(model_dir)
    accuracy = metrics["eval"]["eval_accuracy"]
    print(
        f"\nheld-out accuracy: {accuracy:.1%} on {metrics['eval']['eval_samples']} synthetic pairs (chance 50%)"
    )
    for family, stat in sorted(report["subsets"].items()):
        acc = stat["accuracy"]
        print(
            f"  {family:<11} {acc['value']:.1%} (95% CI {acc['ci_low']:.1%}-{acc['ci_high']:.1%}) on {stat['n']} pairs"
        )
    print(f"Score for response 1 (correct, 9 ÷ 3 = 3): {scores[0]:.4f}")
    print(f"Score for response 2 (wrong, 9 ÷ 2 = 4.5): {scores[1]:.4f}")
    print(f"the correct answer {'wins' if scores[0] > scores[1] else 'LOSES'}; model saved in {model_dir}")
    print(f"evaluation report (calibration, length bias, plots): {out / 'eval' / 'report.md'}")
    result = {
        "heldout_accuracy": accuracy,
        "family_accuracy": {f: s["accuracy"]["value"] for f, s in report["subsets"].items()},
        "apples_scores": scores,
        "model_dir": str(model_dir),
    }
    (out / "demo_result.json").write_text(json.dumps(result, indent=2))
    return result


def _training_settings(args: DemoArguments, model_dir: Path) -> dict:
    """The demo's `TrainingArguments`: one pass, no checkpoints, CPU unless there is a GPU."""
    import torch

    return dict(
        output_dir=str(model_dir),
        num_train_epochs=args.num_train_epochs,
        learning_rate=args.learning_rate,
        per_device_train_batch_size=args.per_device_train_batch_size,
        per_device_eval_batch_size=64,
        warmup_steps=0.1,
        logging_steps=20,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        seed=args.seed,
        do_train=True,
        do_eval=True,
        train_sampling_strategy="group_by_length",  # batches of similar length: less padding
        use_cpu=not torch.cuda.is_available(),
    )


def _apples_scores(model_dir: Path) -> list[float]:
    """The seed article's two apples answers scored exactly as it does, with nothing from rewardkit."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rewardkit.demo.synthetic import APPLES_BAD, APPLES_GOOD, APPLES_PROMPT

    rm = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    scores = []
    for answer in (APPLES_GOOD, APPLES_BAD):
        conv = [{"role": "user", "content": APPLES_PROMPT}, {"role": "assistant", "content": answer}]
        enc = tok.apply_chat_template(conv, tokenize=True, return_tensors="pt", return_dict=True)
        with torch.no_grad():
            scores.append(rm(**enc).logits[0][0].item())
    return scores


def _evaluate(model_dir: Path, heldout: Path, output_dir: Path, seed: int, backbone: str | None) -> dict:
    """`rewardkit eval` on the held-out pairs: accuracy per task family with bootstrap intervals."""
    from rewardkit.eval.run import run_eval_files
    from rewardkit.scorers.load import load_reward_model

    results = run_eval_files(
        load_reward_model(str(model_dir)),
        [heldout],
        output_dir=output_dir,
        seed=seed,
        model_name=f"rewardkit demo ({backbone or 'MiniLM-L6'})",
    )
    return results["summary"]
