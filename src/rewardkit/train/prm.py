"""`rewardkit train --objective prm`: a process reward model, setup → data → model → train → export.

The model is `AutoModelForTokenClassification` with two labels (bad, good) read at the step
separator after each step (`core.steps`); the loss is soft-label cross-entropy on those positions
only; metrics are step accuracy, F1 on bad steps and first-error accuracy (`eval.prm_metrics`).
With `--step_contrast_weight` a step-contrast term is added (`step_contrast_loss`, pairs from
`train.prm_data.contrast_partners`): at the step where a solution goes wrong and a solution of the same
prompt with the same steps before it does not, the good step's margin must beat the bad one's, which
the step's position cannot explain.
Every other part (LoRA with the head always trained, full fine-tuning, gradient checkpointing,
distributed training, resuming) is the pairwise trainer's and transformers.Trainer's own.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from transformers import Trainer

from rewardkit.config import DataArguments, ModelArguments, ScriptArguments
from rewardkit.core.loading import ensure_pad_token, quantization_config, torch_dtype
from rewardkit.core.packing import supports_packing
from rewardkit.core.rewards import is_decoder
from rewardkit.core.steps import (
    add_step_separator,
    good_probability,
    load_token_classifier,
    make_causal,
    packed_step_logits,
    step_logits,
    step_margin,
)
from rewardkit.data.loading import split_pairs
from rewardkit.data.steps import load_step_examples
from rewardkit.data.tokenize import install_chat_template
from rewardkit.eval.prm_metrics import bad_step_f1, first_error_stats, step_accuracy
from rewardkit.train.export import export_model
from rewardkit.train.lora import load_train_tokenizer, lora_from_args, model_load_options
from rewardkit.train.prm_data import (
    PackedStepCollator,
    PromptGroupSampler,
    StepCollator,
    tokenize_step_examples,
)

logger = logging.getLogger("rewardkit.train")


def soft_step_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of (steps, 2) logits against P(good) targets; NaN targets are left out.

    -(p log softmax[good] + (1 - p) log softmax[bad]); with one logit, the binary cross-entropy.
    Example: logits [0, 0] and target 1 give ln 2 = 0.6931.
    """
    keep = ~torch.isnan(labels)
    logits, target = logits[keep].float(), labels[keep].to(logits.device)
    if logits.numel() == 0:
        return logits.sum() * 0.0
    if logits.shape[-1] == 1:
        return torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], target)
    logp = torch.log_softmax(logits, dim=-1)
    return -(target * logp[:, 1] + (1 - target) * logp[:, 0]).mean()


def step_contrast_loss(logits: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """Mean -log sigmoid(margin[good] - margin[bad]) over (P, 2) [good, bad] flat step indices (0 if none).

    Example: margins 1 (good) and 1 (bad) give ln 2 = 0.6931.
    """
    margin = step_margin(logits)
    if pairs.numel() == 0:
        return margin.sum() * 0.0
    pairs = pairs.to(margin.device)
    return -torch.nn.functional.logsigmoid(margin[pairs[:, 0]] - margin[pairs[:, 1]]).mean()


def prm_step_logits(model, batch: dict) -> torch.Tensor:
    """(steps, num_labels) head outputs at every separator of a padded or packed batch."""
    if "block_ids" in batch:
        logits = packed_step_logits(model, batch["input_ids"], batch["position_ids"], batch["block_ids"])
    else:
        logits = step_logits(model, batch["input_ids"], batch["attention_mask"])
    flat = logits.reshape(-1, logits.shape[-1])
    return flat[batch["label_index"].to(flat.device)]


def step_metrics(probs, labels, example_ids, threshold: float = 0.5) -> dict[str, float]:
    """Step accuracy, F1 on bad steps, first-error accuracy and ProcessBench F1 of flat step arrays."""
    probs, labels, example_ids = (np.asarray(x) for x in (probs, labels, example_ids))
    by_solution: dict[int, list[int]] = defaultdict(list)
    for i, e in enumerate(example_ids.tolist()):
        by_solution[e].append(i)
    scores = [probs[idx].tolist() for idx in by_solution.values()]
    targets = [[None if math.isnan(v) else v for v in labels[idx].tolist()] for idx in by_solution.values()]
    first = first_error_stats(scores, targets, threshold)
    return {
        "step_accuracy": step_accuracy(probs, labels.tolist(), threshold),
        "bad_step_f1": bad_step_f1(probs, labels.tolist(), threshold),
        "first_error_accuracy": first["first_error_accuracy"],
        "processbench_f1": first["processbench_f1"],
    }


def compute_prm_metrics(eval_pred) -> dict[str, float]:
    """Trainer `compute_metrics`: predictions are (steps, 3) [P(good), solution id, step index]."""
    preds = np.asarray(eval_pred.predictions)
    return step_metrics(preds[:, 0], np.asarray(eval_pred.label_ids), preds[:, 1].astype(int))


class PRMTrainer(Trainer):
    """transformers.Trainer with the step loss; overrides only `compute_loss`, `prediction_step`, `log`."""

    def __init__(self, *args, step_contrast_weight: float = 0.0, **kwargs):
        kwargs.setdefault("compute_metrics", compute_prm_metrics)
        super().__init__(*args, **kwargs)
        self.step_contrast_weight = step_contrast_weight
        self._train_stats: dict[str, list[float]] = defaultdict(list)

    def _get_train_sampler(self, train_dataset=None):
        dataset = self.train_dataset if train_dataset is None else train_dataset
        if self.step_contrast_weight and "group" in getattr(dataset, "column_names", ()):
            return PromptGroupSampler(dataset["group"], self.args.seed)
        return super()._get_train_sampler(train_dataset)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        logits = prm_step_logits(model, inputs)
        loss = soft_step_loss(logits, inputs["labels"])
        if self.step_contrast_weight and "contrast_index" in inputs:
            contrast = step_contrast_loss(logits, inputs["contrast_index"])
            loss = loss + self.step_contrast_weight * contrast
            if model.training:
                self._train_stats["step_contrast_loss"].append(float(contrast.detach()))
                self._train_stats["step_contrast_pairs"].append(len(inputs["contrast_index"]))
        if model.training:
            probs = good_probability(logits.detach()).cpu().numpy()
            labels = inputs["labels"].cpu().numpy().tolist()
            self._train_stats["step_accuracy"].append(step_accuracy(probs, labels))
        return (loss, {"logits": logits}) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss, out = self.compute_loss(model, inputs, return_outputs=True)
        if prediction_loss_only:
            return loss.detach(), None, None
        probs = good_probability(out["logits"])
        preds = torch.stack(
            [probs, inputs["example_ids"].to(probs).float(), inputs["step_index"].to(probs).float()], dim=1
        )
        return loss.detach(), preds, inputs["labels"]

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if self._train_stats and "loss" in logs:
            for key, values in self._train_stats.items():
                logs[key] = float(np.nanmean(values))
            self._train_stats.clear()
        super().log(logs, *args, **kwargs)


def run_train_prm(
    model_args: ModelArguments, data_args: DataArguments, training_args, script_args: ScriptArguments
) -> dict:
    """Train a process reward model and export it to `training_args.output_dir`; returns the metrics."""
    from transformers import set_seed

    set_seed(training_args.seed)  # run_train has prepared training_args (train.run._prepare)
    train_examples, eval_examples, report = _read_step_splits(data_args, script_args, training_args.seed)
    tokenizer, model, separator_id = _load(model_args, script_args)
    quantized = model_args.load_in_4bit or model_args.load_in_8bit
    limit = getattr(model.config, "max_position_embeddings", None) or data_args.full_max_length
    max_length = min(data_args.full_max_length, limit)

    def tokenize(examples, split):
        ds, cut = tokenize_step_examples(
            tokenizer,
            examples,
            separator_id,
            max_length,
            report,
            last_step_only=script_args.train_on_last_step_only,
            contrast=bool(script_args.step_contrast_weight) and split == "train",
        )
        logger.info("%s: %d solutions (%d cut short to fit %d tokens)", split, len(ds), cut, max_length)
        return ds

    with training_args.main_process_first(desc="tokenizing"):
        train_ds = tokenize(train_examples, "train") if training_args.do_train else None
        eval_ds = tokenize(eval_examples, "validation") if eval_examples else None
    if script_args.use_peft:
        model = lora_from_args(model, script_args, quantized=quantized, task_type="TOKEN_CLS")
    if training_args.gradient_checkpointing and training_args.gradient_checkpointing_kwargs is None:
        training_args.gradient_checkpointing_kwargs = {"use_reentrant": False}
    packed = script_args.packing != "off" and supports_packing(model)
    collator = (PackedStepCollator if packed else StepCollator)(pad_token_id=tokenizer.pad_token_id)
    logger.info("batches: %s", "packed solutions (block mask)" if packed else "one solution per row, padded")
    trainer = PRMTrainer(
        model=model,
        args=training_args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        data_collator=collator,
        step_contrast_weight=script_args.step_contrast_weight,
    )
    metrics: dict = {"data": report.to_dict(), "max_length": max_length, "step_separator_id": separator_id}
    if training_args.do_train:
        result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
        metrics["train"] = dict(result.metrics, train_samples=len(train_ds))
        trainer.log_metrics("train", metrics["train"])
        trainer.save_state()
    if eval_ds is not None:
        metrics["eval"] = dict(trainer.evaluate(), eval_samples=len(eval_ds))
        trainer.log_metrics("eval", metrics["eval"])
    if training_args.do_train and trainer.is_world_process_zero():
        _export(trainer, tokenizer, model_args, script_args, Path(training_args.output_dir), metrics)
    return metrics


def _export(
    trainer, tokenizer, model_args: ModelArguments, script_args: ScriptArguments, out: Path, metrics: dict
):
    """The plain token-classification checkpoint (or adapter), its model card and the run's metrics."""
    written = export_model(
        trainer.model,
        tokenizer,
        out,
        mode=script_args.export,
        dtype=torch_dtype(model_args.torch_dtype),
        quantized=model_args.load_in_4bit or model_args.load_in_8bit,
        num_labels=None,
    )
    write_model_card(out, model_args.model_name_or_path, script_args.step_separator, metrics)
    logger.info("saved process reward model to %s", ", ".join(map(str, written)))
    (out / "rewardkit_metrics.json").write_text(json.dumps(metrics, indent=2, default=str))


def _load(model_args: ModelArguments, script_args: ScriptArguments):
    """(tokenizer, token-classification model, separator id), the separator added and the template installed."""
    tokenizer = load_train_tokenizer(model_args)
    model = load_token_classifier(
        model_args.model_name_or_path,
        quantization_config=quantization_config(
            model_args.load_in_4bit, model_args.load_in_8bit, torch_dtype(model_args.torch_dtype)
        ),
        **model_load_options(model_args),
    )
    ensure_pad_token(tokenizer, model)
    if script_args.step_attention == "causal" and not is_decoder(model):
        make_causal(model)
        logger.info("encoder attention made causal (--step_attention causal)")
    separator_id = add_step_separator(tokenizer, model, script_args.step_separator)
    logger.info("chat template: %s", install_chat_template(tokenizer, script_args.template_name))
    logger.info("step separator %r (token id %d)", script_args.step_separator, separator_id)
    return tokenizer, model, separator_id


def _read_step_splits(data_args: DataArguments, script_args: ScriptArguments, seed: int):
    """(train, validation, DropReport): the files given (comma-separated lists allowed), or a seeded
    split of the training files."""
    from rewardkit.errors import RewardkitError

    if data_args.dataset_name and not data_args.train_file_dir:
        data_args.train_file_dir = data_args.dataset_name
    if not data_args.train_file_dir:
        raise RewardkitError("--objective prm: give --train_file_dir (step-labelled files)")
    neutral = script_args.prm800k_neutral
    train, report = load_step_examples(data_args.train_file_dir.split(","), neutral=neutral)
    if data_args.validation_file_dir:
        valid, valid_report = load_step_examples(data_args.validation_file_dir.split(","), neutral=neutral)
        report.merge(valid_report)
    else:
        train, valid = split_pairs(
            train, data_args.validation_split_percentage, seed, data_args.validation_split
        )
    if data_args.max_train_samples:
        train = train[: data_args.max_train_samples]
    if data_args.max_eval_samples:
        valid = valid[: data_args.max_eval_samples]
    logger.info("step data: %s; train %d, validation %d solutions", report.summary(), len(train), len(valid))
    return train, valid, report


MODEL_CARD = """---
library_name: transformers
pipeline_tag: token-classification
tags: [process-reward-model, rewardkit]
---
# Process reward model

Trained with `rewardkit train --objective prm` from `{base}`. It scores every step of a solution:
the probability that the step is right, read at the separator token `{separator}` (id
`{separator_id}`, also in config.json as `step_separator` / `step_separator_id`) placed after each
step. A solution's score is the minimum of its step scores (`prm_aggregate` in config.json).

```python
import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

model = AutoModelForTokenClassification.from_pretrained("{folder}").eval()
tok = AutoTokenizer.from_pretrained("{folder}")
sep = model.config.step_separator_id
prompt = [{{"role": "user", "content": "Jane has 12 apples ... How many apples does each person get?"}}]
steps = ["12 - 4 = 8.", "8 + 1 = 9.", "9 / 3 = 3. Each person gets 3 apples."]
ids = tok(tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True),
          add_special_tokens=False).input_ids
for step in steps:
    ids += tok(step, add_special_tokens=False).input_ids + [sep]
ids = torch.tensor([ids])
with torch.no_grad():
    probs = model(input_ids=ids).logits[0].softmax(-1)[:, 1]
step_scores = probs[ids[0] == sep].tolist()   # one per step
print(step_scores, min(step_scores))
```

Validation metrics at the end of training: {eval_metrics}
"""


def write_model_card(folder: Path, base: str, separator: str, metrics: dict) -> None:
    """README.md beside the weights: what the model is and how to score steps with transformers alone."""
    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
    evals = {k: round(v, 4) for k, v in metrics.get("eval", {}).items() if isinstance(v, float)}
    text = MODEL_CARD.format(
        base=Path(base).name,
        separator=separator,
        separator_id=config.get("step_separator_id", "?"),
        folder=str(folder),
        eval_metrics=json.dumps(evals) if evals else "none (no validation set)",
    )
    (folder / "README.md").write_text(text)
