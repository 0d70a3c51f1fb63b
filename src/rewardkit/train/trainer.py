"""`RewardTrainer`: transformers.Trainer with the pairwise loss (everything else is the Trainer's)."""

from __future__ import annotations

from collections import defaultdict

import torch
from transformers import Trainer

from rewardkit.core.rewards import sequence_rewards
from rewardkit.train.loss import bradley_terry_loss, metrics_from_sums, pair_metric_sums, pairwise_metrics


def compute_reward_metrics(eval_pred) -> dict[str, float]:
    """Trainer `compute_metrics`: predictions are (pairs, 2) rewards [chosen, rejected]."""
    preds = eval_pred.predictions
    chosen, rejected = torch.as_tensor(preds[:, 0]), torch.as_tensor(preds[:, 1])
    return pairwise_metrics(chosen, rejected)


class RewardTrainer(Trainer):
    """Trains a reward model on batches from `PairwiseCollator` (or the packed collator).

    Overrides only `compute_loss` and `prediction_step`; gradient accumulation, checkpointing,
    resuming, logging and distributed training are the Trainer's own.

    Args:
        center_rewards_coefficient: weight of the reward-centering term (0 disables it).
        forward: function(model, batch) -> (chosen rewards, rejected rewards); defaults to the
            two-row layout (chosen rows then rejected rows).
        objective: function(model, batch, chosen, rejected) -> (loss, chosen reward, rejected reward,
            {name: value} logged during training), for heads with several outputs (`train.debias`,
            `train.ensemble`); the rewards it returns are the ones validated and predicted. Default:
            the Bradley-Terry loss on the one-output rewards.
    """

    def __init__(
        self, *args, center_rewards_coefficient: float = 0.0, forward=None, objective=None, **kwargs
    ):
        kwargs.setdefault("compute_metrics", compute_reward_metrics)
        super().__init__(*args, **kwargs)
        self.center_rewards_coefficient = center_rewards_coefficient
        self.pair_forward = forward or stacked_pair_rewards
        self._train_sums: torch.Tensor | None = None  # pair_metric_sums over every process since the last log
        self.objective = objective
        self._extra_stats: dict[str, list[float]] = defaultdict(
            list
        )  # the objective's own figures (this rank)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        chosen, rejected = self.pair_forward(model, inputs)
        extra: dict[str, float] = {}
        if self.objective is not None:
            loss, chosen, rejected, extra = self.objective(model, inputs, chosen, rejected)
        else:
            loss = bradley_terry_loss(chosen, rejected, inputs.get("margin"), self.center_rewards_coefficient)
        if model.training:
            sums = gather_sums(self.accelerator, pair_metric_sums(chosen, rejected))
            self._train_sums = sums if self._train_sums is None else self._train_sums + sums
            for key, value in extra.items():
                self._extra_stats[key].append(value)
        if return_outputs:
            return loss, {"rewards_chosen": chosen, "rewards_rejected": rejected}
        return loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss, out = self.compute_loss(model, inputs, return_outputs=True)
        if prediction_loss_only:
            return loss.detach(), None, None
        logits = torch.stack([out["rewards_chosen"], out["rewards_rejected"]], dim=1).detach()
        # The Trainer calls compute_metrics only when labels exist; the "label" is always "chosen wins".
        labels = torch.zeros(logits.shape[0], device=logits.device)
        return loss.detach(), logits, labels

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if self._train_sums is not None and "loss" in logs:  # a training log line: add the pair metrics
            logs.update(metrics_from_sums(self._train_sums))
            logs.update({key: sum(values) / len(values) for key, values in self._extra_stats.items()})
            self._train_sums = None
            self._extra_stats.clear()
        super().log(logs, *args, **kwargs)


def gather_sums(accelerator, sums: torch.Tensor) -> torch.Tensor:
    """`sums` added over all processes (every rank calls this at the same step), so the logged training
    metrics are those of every pair of the global batch, not of rank 0's shard. Sums, not the rewards
    themselves: a rank's last batch may hold fewer pairs, and all_gather wants equal shapes."""
    if accelerator is None or accelerator.num_processes == 1:
        return sums
    return accelerator.gather(sums.to(accelerator.device)[None]).sum(0).cpu()


def stacked_pair_rewards(model, inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards of a `PairwiseCollator` batch: the first half of the rows are chosen, the second rejected."""
    rewards = sequence_rewards(model, inputs["input_ids"], inputs["attention_mask"])
    half = rewards.shape[0] // 2
    return rewards[:half], rewards[half:]
