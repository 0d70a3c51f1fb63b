"""`rewardkit train`: setup → data → model → train → evaluate → export, top to bottom."""

from __future__ import annotations

import json
import logging

import torch

from rewardkit.config import DataArguments, ModelArguments, ScriptArguments
from rewardkit.core.loading import ensure_pad_token, load_sequence_classifier, torch_dtype
from rewardkit.core.packing import supports_packing
from rewardkit.core.rewards import is_decoder
from rewardkit.data.templates import RAW_TEXT
from rewardkit.data.tokenize import install_chat_template
from rewardkit.errors import RewardkitError
from rewardkit.train.collator import PairwiseCollator
from rewardkit.train.data import read_splits, tokenize_pairs
from rewardkit.train.export import export_model, gather_full_state_dict
from rewardkit.train.lora import load_train_tokenizer, lora_from_args, model_load_options
from rewardkit.train.model_card import write_model_card
from rewardkit.train.packing import PackedPairCollator, packed_pair_rewards
from rewardkit.train.preflight import check_run, push_folder
from rewardkit.train.robust import calibration_entries, residualize, robust_training
from rewardkit.train.trainer import RewardTrainer

logger = logging.getLogger("rewardkit.train")


def run_train(
    model_args: ModelArguments, data_args: DataArguments, training_args, script_args: ScriptArguments
) -> dict:
    """Train a pairwise reward model (or, with `--objective prm`, a process reward model) and write it
    to `training_args.output_dir`; returns the metrics."""
    from transformers import set_seed

    check_run(training_args)  # reporting integrations and --push_to_hub, before anything loads
    _prepare(training_args, model_args, script_args)
    if script_args.objective == "prm":
        from rewardkit.train.prm import run_train_prm

        return run_train_prm(model_args, data_args, training_args, script_args)
    # The Trainer would push its own (adapter) checkpoints; the exported model is pushed by _export.
    push, training_args.push_to_hub = training_args.push_to_hub, False

    set_seed(training_args.seed)
    # Data first: a bad file fails in a second, not after loading the model.
    train_pairs, eval_pairs, report = read_splits(
        dataset_name=data_args.dataset_name,
        train_file_dir=data_args.train_file_dir,
        validation_file_dir=data_args.validation_file_dir,
        validation_split_percentage=data_args.validation_split_percentage,
        validation_split=data_args.validation_split,
        max_train_samples=data_args.max_train_samples,
        max_eval_samples=data_args.max_eval_samples,
        seed=training_args.seed,
        dataset_info=data_args.dataset_info,
        dataset=data_args.dataset,
    )
    if script_args.calibrate and not eval_pairs:
        raise RewardkitError(
            "--calibrate needs validation pairs: give --validation_file_dir or --validation_split_percentage > 0"
        )
    tokenizer, model, template = _load(model_args, script_args)
    # --length_debias / --ensemble_size: the head grows before LoRA wraps it (docs/robustness.md)
    objective, head_rows, extra_config = robust_training(model, script_args, training_args.seed)
    max_length = _resolve_max_length(data_args.full_max_length, model)
    with training_args.main_process_first(desc="tokenizing"):
        train_ds = (
            tokenize_pairs(tokenizer, train_pairs, max_length, report, "train")
            if training_args.do_train
            else None
        )
        eval_ds = (
            tokenize_pairs(tokenizer, eval_pairs, max_length, report, "validation") if eval_pairs else None
        )
    logger.info(
        "data: %s; train %d pairs, validation %d pairs",
        report.summary(),
        len(train_ds) if train_ds else 0,
        len(eval_ds) if eval_ds else 0,
    )
    if script_args.use_peft:
        quantized = model_args.load_in_4bit or model_args.load_in_8bit
        model = lora_from_args(model, script_args, quantized=quantized)
    collator, pair_forward = _batching(script_args.packing, model, tokenizer.pad_token_id)
    trainer = RewardTrainer(
        model=model,
        args=training_args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        data_collator=collator,
        forward=pair_forward,
        center_rewards_coefficient=script_args.center_rewards_coefficient,
        objective=objective,
    )
    metrics: dict = {"data": report.to_dict(), "max_length": max_length}
    if training_args.do_train:
        metrics["train"] = _train(trainer, training_args, len(train_ds))
        if script_args.length_debias and script_args.debias_residualize:
            residualize(trainer, extra_config, eval_ds, train_ds)
    stats = None
    if eval_ds is not None:
        # one pass over the validation pairs: the metrics, the reward statistics and the temperature
        predicted = trainer.predict(eval_ds, metric_key_prefix="eval")
        metrics["eval"] = _log_eval(trainer, predicted.metrics, len(eval_ds))
        stats = reward_statistics(predicted.predictions)
        if script_args.calibrate:
            extra_config.update(calibration_entries(predicted.predictions))
            metrics["calibration"] = {k: extra_config[k] for k in ("reward_temperature",)}
    if training_args.do_train:
        _export(
            trainer,
            tokenizer,
            (model_args, data_args, training_args, script_args),
            stats,
            metrics,
            template=template,
            push=push,
            heads=(head_rows, extra_config),
        )
    return metrics


def _prepare(training_args, model_args: ModelArguments, script_args: ScriptArguments) -> None:
    """The TrainingArguments both objectives need, and the flag combinations they refuse."""
    training_args.remove_unused_columns = False  # our batches carry pair fields the model signature lacks
    if training_args.use_cpu or not torch.cuda.is_available():
        training_args.dataloader_pin_memory = False  # pinning needs an accelerator; torch warns every epoch
    if not (training_args.do_train or training_args.do_eval):
        training_args.do_train = training_args.do_eval = True
    if training_args.gradient_checkpointing and training_args.gradient_checkpointing_kwargs is None:
        training_args.gradient_checkpointing_kwargs = {
            "use_reentrant": False
        }  # works with frozen LoRA inputs
    if model_args.device_map and training_args.world_size > 1:
        raise RewardkitError(
            "--device_map: leave it unset with several processes; each process puts its copy "
            "of the model on its own device"
        )
    half = {"bfloat16": "--bf16", "float16": "--fp16"}.get(model_args.torch_dtype)
    if half and script_args.use_peft and not (training_args.bf16 or training_args.fp16):
        # apply_lora keeps the trainable weights (LoRA, the head) in float32: without autocast the
        # head's float32 weight meets half-precision hidden states and the first step fails
        raise RewardkitError(
            f"--torch_dtype {model_args.torch_dtype} with --use_peft true: pass {half} true too (LoRA and "
            "the head train in float32 under mixed precision), or --torch_dtype float32"
        )


def _load(model_args: ModelArguments, script_args: ScriptArguments):
    """(tokenizer, sequence classifier, template description) with a pad token and the chat template installed."""
    tokenizer = load_train_tokenizer(model_args)
    model = load_sequence_classifier(
        model_args.model_name_or_path,
        load_in_4bit=model_args.load_in_4bit,
        load_in_8bit=model_args.load_in_8bit,
        **model_load_options(model_args),
    )
    ensure_pad_token(tokenizer, model)
    template = install_chat_template(tokenizer, script_args.template_name)
    logger.info("chat template: %s", template)
    if script_args.template_name != RAW_TEXT:
        logger.info(
            "token stream: every row, string rows (TRL standard format) included, is rendered with this chat "
            "template; --template_name raw_text gives TRL's stream (prompt + answer text + EOS)"
        )
    return tokenizer, model, template


def _train(trainer: RewardTrainer, training_args, n_pairs: int) -> dict:
    result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    # The Trainer's own rate counts the pairs of the steps it ran (right under --max_steps too).
    train_metrics = dict(
        result.metrics,
        train_samples=n_pairs,
        train_pairs_per_second=result.metrics["train_samples_per_second"],
    )
    trainer.log_metrics("train", train_metrics)
    trainer.save_metrics("train", train_metrics)
    trainer.save_state()
    return train_metrics


def _log_eval(trainer: RewardTrainer, predicted_metrics: dict, n_pairs: int) -> dict:
    """The validation metrics of `trainer.predict`, logged and saved as `trainer.evaluate` would."""
    eval_metrics = dict(predicted_metrics, eval_samples=n_pairs)
    trainer.log(dict(predicted_metrics))
    trainer.log_metrics("eval", eval_metrics)
    trainer.save_metrics("eval", eval_metrics)
    return eval_metrics


def _export(
    trainer, tokenizer, args: tuple, stats, metrics: dict, *, template: str, push: bool, heads: tuple
) -> None:
    """Write the model (rank 0) with the reward statistics, its model card and the run's metrics;
    push the folder to the Hub when asked. `heads`: (head rows to keep, extra config entries) of
    `train.robust.robust_training`."""
    model_args, data_args, training_args, script_args = args
    head_rows, extra_config = heads
    # ZeRO-3 / FSDP: every rank sends its shard of the weights; None when each rank holds them whole.
    full_weights = gather_full_state_dict(trainer.accelerator, trainer.model_wrapped)
    if not trainer.is_world_process_zero():
        return
    written = export_model(
        trainer.model,
        tokenizer,
        training_args.output_dir,
        mode=script_args.export,
        dtype=torch_dtype(model_args.torch_dtype),
        reward_stats=stats,
        quantized=model_args.load_in_4bit or model_args.load_in_8bit,
        state_dict=full_weights,
        head_rows=head_rows,
        extra_config=extra_config,
    )
    logger.info("saved reward model to %s", ", ".join(map(str, written)))
    card = write_model_card(
        training_args.output_dir,
        base_model=model_args.model_name_or_path,
        data=_data_sources(data_args),
        eval_metrics=metrics.get("eval"),
        use_peft=script_args.use_peft,
        template=template,
        model_id=training_args.hub_model_id if push else None,
    )
    logger.info("model card: %s", card)
    if push:
        metrics["hub_repo"] = push_folder(
            training_args.output_dir,
            training_args.hub_model_id,
            training_args.hub_token,
            training_args.hub_private_repo,
        )
    with open(f"{training_args.output_dir}/rewardkit_metrics.json", "w") as f:
        json.dump(metrics, f, indent=2, default=str)


def _data_sources(data_args: DataArguments) -> list[str]:
    sources = [data_args.train_file_dir or data_args.dataset_name, data_args.validation_file_dir]
    if data_args.dataset_info:
        sources.append(f"{data_args.dataset_info} (LLaMA-Factory): {data_args.dataset}")
    return [str(s) for s in sources if s]


def _resolve_max_length(requested: int, model) -> int:
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit and requested > limit:
        logger.info("max_length %d is above the model's %d positions: using %d", requested, limit, limit)
        return limit
    return requested


def _batching(packing: str, model, pad_token_id: int):
    """The collator and pair-forward to use (packing is added for decoders where exact)."""
    if packing != "off" and is_decoder(model) and supports_packing(model):
        return PackedPairCollator(pad_token_id=pad_token_id), packed_pair_rewards
    if packing == "on":
        logger.warning(
            "--packing on: not available for %s; using the plain pairwise layout", type(model).__name__
        )
    return PairwiseCollator(pad_token_id=pad_token_id), None


def reward_statistics(predictions) -> dict[str, float]:
    """Mean and std of all validation rewards (chosen and rejected), saved for score normalisation."""
    rewards = torch.as_tensor(predictions).flatten().float()
    return {
        "reward_mean": rewards.mean().item(),
        "reward_std": rewards.std().item() if rewards.numel() > 1 else 1.0,
    }
