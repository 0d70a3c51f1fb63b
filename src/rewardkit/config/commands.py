"""The arguments of `score`, `eval` and `serve`: how to load any reward model, and each command's own."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rewardkit.config.common import (
    DTYPE_NAMES,
    ENSEMBLE_AGGREGATES,
    JUDGE_MODES,
    KINDS,
    TEMPLATES_HELP,
    check_at_least,
    check_choice,
    check_dataset_info,
)
from rewardkit.data.templates import check_template_name
from rewardkit.errors import RewardkitError


def check_dpo_flags(kind: str, reference: str | None, beta: float, reference_free_mean: bool) -> None:
    """The DPO flags make sense only with --kind dpo; --beta must be positive."""
    if kind != "dpo" and (reference or reference_free_mean):
        raise RewardkitError("--reference and --dpo_reference_free_mean are for --kind dpo")
    if beta <= 0:
        raise RewardkitError(f"--beta {beta}: must be > 0")
    if reference and reference_free_mean:
        raise RewardkitError("--dpo_reference_free_mean is for the reference-free reward: drop --reference")


def dpo_options(args) -> dict:
    """load_reward_model's options for --kind dpo, from arguments carrying the DPO flags."""
    return dict(
        reference=args.reference,
        reference_gguf_file=args.reference_gguf_file,
        beta=args.beta,
        reference_free_mean=args.dpo_reference_free_mean,
    )


@dataclass
class RewardModelArguments:
    """How `score`, `eval` and `serve` load a reward model (any kind)."""

    model: str | None = field(
        default=None, metadata={"help": "Model folder, or module.path:function for a Python scorer."}
    )
    kind: str = field(
        default="auto",
        metadata={"help": "Reward-model kind (auto decides from the checkpoint).", "choices": list(KINDS)},
    )
    gguf_file: str | None = field(default=None, metadata={"help": "GGUF file inside --model."})
    torch_dtype: str = field(
        default="float32",
        metadata={"help": "auto, bfloat16, float16 or float32.", "choices": list(DTYPE_NAMES)},
    )
    attn_implementation: str | None = field(
        default=None, metadata={"help": "eager, sdpa, flash_attention_2, ..."}
    )
    device_map: str | None = field(default=None, metadata={"help": "e.g. auto, cpu, cuda:0."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Run the model folder's own Python code."}
    )
    allow_pickle: bool = field(
        default=False,
        metadata={"help": "Load pickle weights (pytorch_model.bin); by default only safetensors or GGUF."},
    )
    template_name: str | None = field(default="auto", metadata={"help": f"Chat template: {TEMPLATES_HELP}."})
    max_length: int | None = field(
        default=None,
        metadata={
            "help": "Tokens per conversation; older turns are dropped beyond it (default: the model's limit)."
        },
    )
    batch_tokens: int = field(default=16384, metadata={"help": "Padded tokens per forward pass."})
    mode: str = field(
        default="pairwise",
        metadata={"help": "Generative judges: pairwise, pointwise or logprob.", "choices": list(JUDGE_MODES)},
    )
    max_new_tokens: int = field(
        default=256, metadata={"help": "Generative judges: tokens generated per verdict."}
    )
    reference: str | None = field(
        default=None, metadata={"help": "--kind dpo: the reference model folder (none: reference-free)."}
    )
    reference_gguf_file: str | None = field(
        default=None, metadata={"help": "--kind dpo: GGUF file inside --reference."}
    )
    beta: float = field(default=0.1, metadata={"help": "--kind dpo: reward = beta * (log pi - log pi_ref)."})
    dpo_reference_free_mean: bool = field(
        default=False,
        metadata={"help": "--kind dpo without --reference: mean log-prob per answer token (not the sum)."},
    )
    ensemble_aggregate: str | None = field(
        default=None,
        metadata={
            "help": "Head ensembles: the score is mean, min or mean_minus_std (default: saved in training).",
            "choices": list(ENSEMBLE_AGGREGATES),
        },
    )
    ensemble_lambda: float | None = field(
        default=None, metadata={"help": "Head ensembles: lambda of mean_minus_std (default: saved)."}
    )

    def __post_init__(self):  # every value checked here too: a dataclass built in Python skips argparse
        check_dpo_flags(self.kind, self.reference, self.beta, self.dpo_reference_free_mean)
        if not self.model:
            raise RewardkitError("--model is required (a model folder or module.path:function)")
        from rewardkit.assets import resolve_packaged

        self.model, self.gguf_file = resolve_packaged(self.model, self.gguf_file)
        check_choice("kind", self.kind, KINDS)
        check_choice("torch_dtype", self.torch_dtype, DTYPE_NAMES)
        check_choice("mode", self.mode, JUDGE_MODES)
        check_template_name(self.template_name)
        check_at_least("max_length", self.max_length, 8)
        check_at_least("batch_tokens", self.batch_tokens, 1)
        check_at_least("max_new_tokens", self.max_new_tokens, 1)
        if self.reference:
            self.reference, self.reference_gguf_file = resolve_packaged(
                self.reference, self.reference_gguf_file
            )

    def load(self, device_map: str | None = None):
        """The reward model these arguments describe.

        Args:
            device_map: used when `--device_map` is unset (e.g. this process's device under
                `accelerate launch`).
        """
        from rewardkit.scorers.load import load_reward_model

        return load_reward_model(
            self.model,
            kind=self.kind,
            gguf_file=self.gguf_file,
            dtype=self.torch_dtype,
            attn_implementation=self.attn_implementation,
            device_map=self.device_map or device_map,
            trust_remote_code=self.trust_remote_code,
            allow_pickle=self.allow_pickle,
            template_name=self.template_name,
            max_length=self.max_length,
            batch_tokens=self.batch_tokens,
            mode=self.mode,  # classifiers ignore the judge options
            max_new_tokens=self.max_new_tokens,
            **(dpo_options(self) if self.kind == "dpo" else {}),
            **{
                name: getattr(self, name)
                for name in ("ensemble_aggregate", "ensemble_lambda")
                if getattr(self, name) is not None
            },
        )


@dataclass
class ScoreArguments:
    """The score command's own options; the model is described by `RewardModelArguments`."""

    input: str | None = field(
        default=None, metadata={"help": "Rows to score: .jsonl, .json or .parquet (required)."}
    )
    output: str | None = field(
        default=None, metadata={"help": "Where scored rows go, as JSON Lines (required)."}
    )
    chunk_size: int = field(
        default=256, metadata={"help": "Input rows per scoring call and per output flush."}
    )
    resume: bool = field(
        default=False, metadata={"help": "Continue a stopped run: skip rows already written."}
    )
    skip_bad_lines: bool = field(
        default=False,
        metadata={
            "help": "Write unreadable rows to <output>.bad.jsonl with the error and go on "
            "(default: stop at the first)."
        },
    )
    normalize: bool = field(
        default=False,
        metadata={"help": "Also write (score - mean) / std when the checkpoint carries reward statistics."},
    )
    calibrated: bool = field(
        default=False,
        metadata={
            "help": "Pairs: also write p_chosen = sigmoid((chosen - rejected) / T), T from --calibrate."
        },
    )

    def __post_init__(self):
        for flag in ("input", "output"):
            if not getattr(self, flag):
                raise RewardkitError(f"--{flag} is required")
        check_at_least("chunk_size", self.chunk_size, 1)
        if Path(self.input).resolve() == Path(self.output).resolve():
            raise RewardkitError(f"--output {self.output}: must differ from --input")


@dataclass
class EvalArguments:
    data: list[str] = field(
        default_factory=list, metadata={"help": "Preference files or folders (pairwise or N-way)."}
    )
    output_dir: str = field(
        default="outputs/eval", metadata={"help": "Where results.json, report.md and plots go."}
    )
    sections: str | None = field(
        default=None,
        metadata={
            "help": "YAML/JSON mapping sections to subsets (e.g. configs/rewardbench_v1_sections.yaml)."
        },
    )
    baseline_scores: str | None = field(
        default=None, metadata={"help": "results.json of another model, for a paired comparison."}
    )
    n_boot: int = field(
        default=1000, metadata={"help": "Bootstrap resamples for confidence intervals (0: none)."}
    )
    seed: int = field(default=0, metadata={"help": "Bootstrap seed."})
    batch_size: int = field(default=32, metadata={"help": "Conversations per scoring call."})
    step_threshold: float | None = field(
        default=None,
        metadata={
            "help": "PRMs: step score under which a step counts as wrong (default: chosen on a validation split)."
        },
    )
    validation_fraction: float = field(
        default=0.2, metadata={"help": "PRMs without --step_threshold: share of solutions used to choose it."}
    )
    stress: bool = field(
        default=False,
        metadata={"help": "Re-score pairs with seeded style/length perturbations (docs/robustness.md)."},
    )
    calibrated: bool = field(
        default=False,
        metadata={"help": "Also report ECE of sigmoid(margin / T), T from `rewardkit train --calibrate`."},
    )

    dataset_info: str | None = field(
        default=None,
        metadata={
            "help": "A LLaMA-Factory dataset_info.json; with --dataset, as in train (docs/formats.md)."
        },
    )
    dataset: str | None = field(
        default=None, metadata={"help": "Entries of --dataset_info to evaluate on, comma-separated."}
    )

    def __post_init__(self):
        check_dataset_info(self.dataset_info, self.dataset)
        if not self.data and not self.dataset_info:
            raise RewardkitError(
                "--data is required: one or more preference files or folders (or --dataset_info with --dataset)"
            )


@dataclass
class ServeArguments:
    host: str = field(
        default="127.0.0.1", metadata={"help": "Address to bind (loopback unless you say otherwise)."}
    )
    port: int = field(default=8000, metadata={"help": "Port."})
    api_key: str | None = field(
        default=None, metadata={"help": "Require 'Authorization: Bearer KEY' (or set REWARDKIT_API_KEY)."}
    )
    max_body_bytes: int = field(default=8 * 2**20, metadata={"help": "Largest request body accepted."})
    max_items: int = field(default=256, metadata={"help": "Conversations per request at most."})
    max_tokens_per_item: int = field(default=32768, metadata={"help": "Tokens per conversation at most."})
    max_batch_tokens: int = field(
        default=16384, metadata={"help": "Dynamic batching: tokens per merged batch."}
    )
    max_batch_items: int = field(
        default=64, metadata={"help": "Dynamic batching: conversations per merged batch."}
    )
    max_wait_ms: float = field(
        default=5.0, metadata={"help": "Dynamic batching: longest wait for more requests."}
    )
    batching: bool = field(default=True, metadata={"help": "Merge concurrent requests into batches."})
    normalize_reward: bool = field(
        default=False,
        metadata={
            "help": "/get_reward answers (reward - reward_mean) / reward_std from the checkpoint's training "
            "statistics, as OpenRLHF's --normalize_reward does (/score keeps both columns)."
        },
    )
    backend: str = field(
        default="torch",
        metadata={
            "help": "torch, or vllm (sequence classifiers on GPU, vLLM installed).",
            "choices": ["torch", "vllm"],
        },
    )
    log_level: str = field(default="info", metadata={"help": "uvicorn log level."})
