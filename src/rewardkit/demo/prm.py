"""`rewardkit demo --objective prm`: train a process reward model on synthetic step-labelled solutions,
report held-out first-error F1, and score the apples example step by step (offline, CPU, minutes)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

logger = logging.getLogger("rewardkit.demo")


def run_prm_demo(args) -> dict:
    """Generate step data (seed for training, seed + 1 held out), train, evaluate, score the apples steps.

    `args` is the demo's `DemoArguments`; n_train and n_eval count solutions (half of them correct).
    The step threshold of the first-error metrics is chosen on a seeded 20% of the held-out
    solutions (the F1 that threshold maximises there) and the metrics are reported on the other 80%,
    as `rewardkit eval` does without --step_threshold: a PRM's scores need not centre on 0.5.
    """
    import torch
    from transformers import TrainingArguments

    from rewardkit.assets import minilm_dir
    from rewardkit.config import DataArguments, ModelArguments, ScriptArguments
    from rewardkit.demo.synthetic_steps import (
        APPLES_BAD_STEPS,
        APPLES_GOOD_STEPS,
        APPLES_STEPS_PROMPT,
        make_step_set,
        to_trl_row,
    )
    from rewardkit.eval.prm_run import run_step_eval
    from rewardkit.scorers.prm import load_prm
    from rewardkit.train.run import run_train

    out = Path(args.output_dir)
    (out / "data").mkdir(parents=True, exist_ok=True)
    for name, n, seed in (("train", args.n_train, args.seed), ("heldout", args.n_eval, args.seed + 1)):
        with (out / "data" / f"{name}.jsonl").open("w") as f:
            for example in make_step_set(max(1, n // 2), seed=seed):
                f.write(json.dumps(to_trl_row(example)) + "\n")
    model_dir = out / "model"
    run_train(
        ModelArguments(model_name_or_path=args.model_name_or_path or str(minilm_dir())),
        DataArguments(
            train_file_dir=str(out / "data" / "train.jsonl"),
            validation_split_percentage=0,
            max_length=args.max_length,
        ),
        TrainingArguments(
            output_dir=str(model_dir),
            num_train_epochs=args.num_train_epochs,
            learning_rate=args.learning_rate,
            per_device_train_batch_size=args.per_device_train_batch_size,
            warmup_steps=0.1,
            logging_steps=20,
            save_strategy="no",
            eval_strategy="no",
            report_to="none",
            seed=args.seed,
            do_train=True,
            train_sampling_strategy="group_by_length",
            use_cpu=not torch.cuda.is_available(),
        ),
        ScriptArguments(
            use_peft=args.use_peft,
            template_name="auto",
            objective="prm",
            step_contrast_weight=args.step_contrast_weight,
            step_attention=args.step_attention,
        ),
    )
    rm = load_prm(str(model_dir))
    results = run_step_eval(
        rm,
        [out / "data" / "heldout.jsonl"],
        output_dir=out / "eval",
        seed=args.seed,
        model_name="rewardkit demo PRM",
    )
    summary = results["summary"]
    first = summary["first_error"]
    good, bad = (
        rm.score_steps(APPLES_STEPS_PROMPT, APPLES_GOOD_STEPS),
        rm.score_steps(APPLES_STEPS_PROMPT, APPLES_BAD_STEPS),
    )
    print(
        f"\nheld-out first-error F1 (ProcessBench): {first['processbench_f1']['value']:.3f} on {summary['n_solutions']} "
        f"synthetic solutions (accuracy on erroneous {first['erroneous_accuracy']:.1%}, on correct {first['correct_accuracy']:.1%}; "
        f"step threshold {summary['threshold']:.3f}, chosen on a {summary['threshold_chosen_on']})"
    )
    step = summary["steps"]
    print(
        f"step AUROC {step['auroc']['value']:.3f}, step accuracy {step['accuracy']['value']:.1%}, F1 on bad steps {step['bad_f1']['value']:.3f}"
    )
    print(
        "apples, correct solution: step scores "
        + ", ".join(f"{s:.3f}" for s in good.step_scores)
        + f"; min {good.score:.3f}"
    )
    print(
        "apples, wrong solution:   step scores "
        + ", ".join(f"{s:.3f}" for s in bad.step_scores)
        + f"; min {bad.score:.3f}"
    )
    lowest = min(range(len(bad.step_scores)), key=bad.step_scores.__getitem__)
    ok = lowest == 2 and bad.score < good.score
    print(
        f"the wrong solution's lowest step is step {lowest + 1} (the mistake is in step 3); "
        f"the correct solution {'wins' if good.score > bad.score else 'LOSES'}; model saved in {model_dir}"
    )
    result = {
        "heldout_processbench_f1": first["processbench_f1"]["value"],
        "heldout": summary,
        "apples_good_steps": good.step_scores,
        "apples_bad_steps": bad.step_scores,
        "apples_ok": ok,
        "model_dir": str(model_dir),
    }
    (out / "demo_result.json").write_text(json.dumps(result, indent=2))
    return result
