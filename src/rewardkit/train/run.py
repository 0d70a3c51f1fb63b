"""`rewardkit train`: setup → data → model → train → evaluate → export, top to bottom."""

from __future__ import annotations

import json
import logging

import torch

from rewardkit.config import DataArguments, ModelArguments, ScriptArguments
from rewardkit.core.loading import ensure_pad_token, load_sequence_classifier, load_tokenizer, torch_dtype
from rewardkit.core.packing import supports_packing
from rewardkit.core.rewards import is_decoder
from rewardkit.data.tokenize import install_chat_template
from rewardkit.errors import RewardkitError
from rewardkit.train.collator import PairwiseCollator
from rewardkit.train.data import read_splits, tokenize_pairs
from rewardkit.train.export import export_model, gather_full_state_dict
from rewardkit.train.lora import apply_lora
from rewardkit.train.packing import PackedPairCollator, packed_pair_rewards
from rewardkit.train.trainer import RewardTrainer

logger = logging.getLogger("rewardkit.train")


def run_train(
    model_args: ModelArguments, data_args: DataArguments, training_args, script_args: ScriptArguments
) -> dict:
    """Train a pairwise reward model and write it to `training_args.output_dir`; returns the metrics."""
    from transformers import set_seed

    set_seed(training_args.seed)
    training_args.remove_unused_columns = False  # our batches carry pair fields the model signature lacks
    if training_args.use_cpu or not torch.cuda.is_available():
        training_args.dataloader_pin_memory = False  # pinning needs an accelerator; torch warns every epoch
    if not (training_args.do_train or training_args.do_eval):
        training_args.do_train = training_args.do_eval = True

    if model_args.device_map and training_args.world_size > 1:
        raise RewardkitError(
            "--device_map: leave it unset with several processes; each process puts its copy "
            "of the model on its own device"
        )
    # Data first: a bad file fails in a second, not after loading the model.
    train_pairs, eval_pairs, report = read_splits(
        dataset_name=data_args.dataset_name,
        train_file_dir=data_args.train_file_dir,
        validation_file_dir=data_args.validation_file_dir,
        validation_split_percentage=data_args.validation_split_percentage,
        max_train_samples=data_args.max_train_samples,
        max_eval_samples=data_args.max_eval_samples,
        seed=training_args.seed,
    )
    tokenizer = load_tokenizer(
        model_args.tokenizer_name_or_path or model_args.model_name_or_path,
        gguf_file=None if model_args.tokenizer_name_or_path else model_args.gguf_file,
        trust_remote_code=model_args.trust_remote_code,
        use_fast=model_args.use_fast_tokenizer,
        cache_dir=model_args.cache_dir,
        flag="--model_name_or_path",
    )
    model = load_sequence_classifier(
        model_args.model_name_or_path,
        gguf_file=model_args.gguf_file,
        dtype=model_args.torch_dtype,
        attn_implementation=model_args.attn_implementation,
        device_map=model_args.device_map,
        trust_remote_code=model_args.trust_remote_code,
        load_in_4bit=model_args.load_in_4bit,
        load_in_8bit=model_args.load_in_8bit,
        cache_dir=model_args.cache_dir,
        allow_pickle=model_args.allow_pickle,
        flag="--model_name_or_path",
    )
    ensure_pad_token(tokenizer, model)
    logger.info("chat template: %s", install_chat_template(tokenizer, script_args.template_name))
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

    quantized = model_args.load_in_4bit or model_args.load_in_8bit
    if script_args.use_peft:
        model = apply_lora(
            model,
            target_modules=script_args.target_modules,
            lora_rank=script_args.lora_rank,
            lora_alpha=script_args.lora_alpha,
            lora_dropout=script_args.lora_dropout,
            modules_to_save=script_args.modules_to_save,
            peft_path=script_args.peft_path,
            quantized=quantized,
        )
        model.print_trainable_parameters()
    if training_args.gradient_checkpointing and training_args.gradient_checkpointing_kwargs is None:
        training_args.gradient_checkpointing_kwargs = {
            "use_reentrant": False
        }  # works with frozen LoRA inputs

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
    )
    metrics: dict = {"data": report.to_dict(), "max_length": max_length}
    if training_args.do_train:
        result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
        # The Trainer's own rate counts the pairs of the steps it ran (right under --max_steps too).
        train_metrics = dict(
            result.metrics,
            train_samples=len(train_ds),
            train_pairs_per_second=result.metrics["train_samples_per_second"],
        )
        trainer.log_metrics("train", train_metrics)
        trainer.save_metrics("train", train_metrics)
        trainer.save_state()
        metrics["train"] = train_metrics
    stats = None
    if eval_ds is not None:
        eval_metrics = dict(trainer.evaluate(), eval_samples=len(eval_ds))
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
        metrics["eval"] = eval_metrics
        stats = reward_statistics(trainer, eval_ds)
    # ZeRO-3 / FSDP: every rank sends its shard of the weights; None when each rank holds them whole.
    full_weights = (
        gather_full_state_dict(trainer.accelerator, trainer.model_wrapped) if training_args.do_train else None
    )
    if training_args.do_train and trainer.is_world_process_zero():
        written = export_model(
            trainer.model,
            tokenizer,
            training_args.output_dir,
            mode=script_args.export,
            dtype=torch_dtype(model_args.torch_dtype),
            reward_stats=stats,
            quantized=quantized,
            state_dict=full_weights,
        )
        logger.info("saved reward model to %s", ", ".join(map(str, written)))
        with open(f"{training_args.output_dir}/rewardkit_metrics.json", "w") as f:
            json.dump(metrics, f, indent=2, default=str)
    return metrics


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


def reward_statistics(trainer: RewardTrainer, dataset) -> dict[str, float]:
    """Mean and std of all rewards (chosen and rejected) on `dataset`, saved for score normalisation."""
    predictions = trainer.predict(dataset).predictions
    rewards = torch.as_tensor(predictions).flatten().float()
    return {
        "reward_mean": rewards.mean().item(),
        "reward_std": rewards.std().item() if rewards.numel() > 1 else 1.0,
    }
