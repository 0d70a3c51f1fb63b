"""`rewardkit train`'s arguments: the seed's three dataclasses (MedicalGPT's field names) and its legacy flags."""

from __future__ import annotations

from dataclasses import dataclass, field

from rewardkit.config.common import (
    DTYPE_NAMES,
    ENSEMBLE_AGGREGATES,
    STEP_ATTENTIONS,
    TEMPLATES_HELP,
    check_at_least,
    check_choice,
    check_dataset_info,
)
from rewardkit.data.loading import SPLITS
from rewardkit.data.templates import check_template_name
from rewardkit.errors import RewardkitError


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Local model folder (required), or packaged:minilm / packaged:smollm2."},
    )
    model_type: str | None = field(
        default=None, metadata={"help": "Accepted for MedicalGPT; the type is read from config.json."}
    )
    tokenizer_name_or_path: str | None = field(
        default=None, metadata={"help": "Tokenizer folder if not the model's."}
    )
    gguf_file: str | None = field(
        default=None, metadata={"help": "GGUF file inside model_name_or_path (dequantised on load)."}
    )
    load_in_4bit: bool = field(
        default=False, metadata={"help": "QLoRA: 4-bit base weights (needs bitsandbytes and a GPU)."}
    )
    load_in_8bit: bool = field(
        default=False, metadata={"help": "8-bit base weights (needs bitsandbytes and a GPU)."}
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Cache folder for datasets/models."})
    use_fast_tokenizer: bool = field(default=True, metadata={"help": "Use the fast (Rust) tokenizer."})
    torch_dtype: str = field(
        default="float32",
        metadata={"help": "auto, bfloat16, float16 or float32.", "choices": list(DTYPE_NAMES)},
    )
    attn_implementation: str | None = field(
        default=None, metadata={"help": "eager, sdpa, flash_attention_2, ..."}
    )
    device_map: str | None = field(
        default=None, metadata={"help": "e.g. auto or cpu (not with multi-process training)."}
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Run the model folder's own Python code."}
    )
    allow_pickle: bool = field(
        default=False,
        metadata={"help": "Load pickle weights (pytorch_model.bin); by default only safetensors or GGUF."},
    )

    def __post_init__(self):
        if not self.model_name_or_path:
            raise RewardkitError("--model_name_or_path is required (a local model folder)")
        from rewardkit.assets import resolve_packaged

        self.model_name_or_path, self.gguf_file = resolve_packaged(self.model_name_or_path, self.gguf_file)
        check_choice("torch_dtype", self.torch_dtype, DTYPE_NAMES)
        if self.load_in_4bit and self.load_in_8bit:
            raise RewardkitError("--load_in_4bit and --load_in_8bit: choose one")


@dataclass
class DataArguments:
    dataset_name: str | None = field(
        default=None, metadata={"help": "A `datasets` hub name (needs network)."}
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Accepted for MedicalGPT."})
    train_file_dir: str | None = field(
        default=None, metadata={"help": "Training file or folder (.json/.jsonl/.parquet, recursive)."}
    )
    validation_file_dir: str | None = field(default=None, metadata={"help": "Validation file or folder."})
    max_source_length: int = field(
        default=1024, metadata={"help": "With max_target_length, sets max_length (MedicalGPT)."}
    )
    max_target_length: int = field(default=256, metadata={"help": "See max_source_length."})
    max_length: int | None = field(
        default=None, metadata={"help": "Tokens per conversation (default: source + target)."}
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use at most this many training pairs."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Use at most this many validation pairs."}
    )
    overwrite_cache: bool = field(
        default=False, metadata={"help": "Accepted for MedicalGPT (nothing is cached)."}
    )
    validation_split_percentage: float = field(
        default=5.0,
        metadata={"help": "Percent of training pairs held out when no validation files are given."},
    )
    validation_split: str = field(
        default="shuffle",
        metadata={
            "help": "How that part is chosen: 'shuffle' (seeded) or 'hash' (by each pair's content: the same "
            "pairs for any seed, order or file; docs/train.md).",
            "choices": list(SPLITS),
        },
    )
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Accepted for MedicalGPT."})
    dataset_info: str | None = field(
        default=None,
        metadata={"help": "A LLaMA-Factory dataset_info.json; with --dataset (docs/formats.md)."},
    )
    dataset: str | None = field(
        default=None, metadata={"help": "Entries of --dataset_info to train on, comma-separated."}
    )

    def __post_init__(self):
        check_dataset_info(self.dataset_info, self.dataset)
        if not (self.dataset_name or self.train_file_dir or self.validation_file_dir or self.dataset_info):
            raise RewardkitError(
                "give --train_file_dir (file or folder), --dataset_name, or --dataset_info with --dataset"
            )
        if not 0 <= self.validation_split_percentage < 100:
            raise RewardkitError("--validation_split_percentage must be in [0, 100)")
        check_at_least("max_length", self.max_length, 8)

    @property
    def full_max_length(self) -> int:
        return self.max_length or (self.max_source_length + self.max_target_length)


@dataclass
class ScriptArguments:
    use_peft: bool = field(default=True, metadata={"help": "LoRA (true) or full fine-tuning (false)."})
    target_modules: str | None = field(
        default="all", metadata={"help": "Comma-separated module names, or 'all' linear layers."}
    )
    lora_rank: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_alpha: float = field(default=16.0, metadata={"help": "LoRA alpha."})
    modules_to_save: str | None = field(
        default=None, metadata={"help": "Extra modules trained in full (the reward head always is)."}
    )
    peft_path: str | None = field(default=None, metadata={"help": "Resume training of this LoRA adapter."})
    template_name: str | None = field(default="auto", metadata={"help": f"Chat template: {TEMPLATES_HELP}."})
    center_rewards_coefficient: float = field(
        default=0.0, metadata={"help": "Weight of mean((r_c + r_r)^2) added to the loss."}
    )
    export: str = field(
        default="merged",
        metadata={
            "help": "merged (plain checkpoint), adapter, or both.",
            "choices": ["merged", "adapter", "both"],
        },
    )
    packing: str = field(
        default="auto",
        metadata={
            "help": "Shared-prefix pair packing: auto (on for decoders), on, off.",
            "choices": ["auto", "on", "off"],
        },
    )

    # Process reward models (docs/prm.md): `--objective prm` trains a token-level step head instead.
    objective: str = field(
        default="pairwise",
        metadata={
            "help": "pairwise (Bradley-Terry RM) or prm (process reward model).",
            "choices": ["pairwise", "prm"],
        },
    )
    step_separator: str = field(
        default="<|step|>", metadata={"help": "PRM: token placed after each step, where its score is read."}
    )
    train_on_last_step_only: bool = field(
        default=False, metadata={"help": "PRM: learn only each solution's last step."}
    )
    step_attention: str = field(
        default="causal",
        metadata={
            "help": "PRM on an encoder: causal (a step's score sees only the steps so far, as in a decoder; "
            "saved as is_decoder in config.json) or bidirectional. Decoders are causal anyway.",
            "choices": list(STEP_ATTENTIONS),
        },
    )
    step_contrast_weight: float = field(
        default=0.0,
        metadata={
            "help": "PRM: weight of a step-contrast term: where two solutions of one prompt share their steps "
            "up to a step labelled good in one and bad in the other, -log sigmoid(good step margin - bad "
            "step margin); batches then hold whole prompts. 0: off."
        },
    )
    prm800k_neutral: str = field(
        default="good",
        metadata={"help": "PRM: what a PRM800K rating of 0 means.", "choices": ["good", "bad"]},
    )
    # Reward hacking defences (docs/robustness.md).
    length_debias: bool = field(
        default=False,
        metadata={"help": "ODIN: train a quality head and a length head; export the quality head only."},
    )
    length_weight: float = field(
        default=1.0, metadata={"help": "--length_debias: weight of 1 - |Pearson(length head, length)|."}
    )
    decorrelation_weight: float = field(
        default=1.0, metadata={"help": "--length_debias: weight of |Pearson(quality head, length)|."}
    )
    orthogonality_weight: float = field(
        default=1.0, metadata={"help": "--length_debias: weight of |w_quality . w_length|."}
    )
    debias_residualize: bool = field(
        default=True,
        metadata={
            "help": "--length_debias: after training, fold the length head into the exported quality head "
            "so its covariance with answer length on the validation (else training) pairs is 0."
        },
    )
    debias_window: int = field(
        default=128,
        metadata={
            "help": "--length_debias: earlier answers the correlations are also taken over (0: the batch's only)."
        },
    )
    ensemble_size: int = field(
        default=1, metadata={"help": "K > 1: K score heads on one backbone, each on its own bootstrap."}
    )
    ensemble_aggregate: str = field(
        default="mean",
        metadata={
            "help": "The ensemble's score saved as default: mean, min, mean_minus_std.",
            "choices": list(ENSEMBLE_AGGREGATES),
        },
    )
    ensemble_lambda: float = field(default=1.0, metadata={"help": "lambda of mean_minus_std."})
    calibrate: bool = field(
        default=False,
        metadata={"help": "Fit a temperature on the validation pairs after training (saved in config.json)."},
    )

    def __post_init__(self):
        if self.lora_rank < 1:
            raise RewardkitError("--lora_rank must be at least 1")
        if self.center_rewards_coefficient < 0:
            raise RewardkitError("--center_rewards_coefficient must be >= 0")
        check_choice("export", self.export, ("merged", "adapter", "both"))
        check_choice("packing", self.packing, ("auto", "on", "off"))
        check_choice("step_attention", self.step_attention, STEP_ATTENTIONS)
        check_template_name(self.template_name)
        check_robust_training(self)


def check_robust_training(args: ScriptArguments) -> None:
    """The --length_debias / --ensemble_size / --calibrate flags, checked together."""
    for name in (
        "length_weight",
        "decorrelation_weight",
        "orthogonality_weight",
        "ensemble_lambda",
        "debias_window",
        "step_contrast_weight",
    ):
        if getattr(args, name) < 0:
            raise RewardkitError(f"--{name} must be >= 0, got {getattr(args, name)}")
    if args.ensemble_size < 1:
        raise RewardkitError(f"--ensemble_size must be at least 1, got {args.ensemble_size}")
    if args.ensemble_aggregate not in ENSEMBLE_AGGREGATES:
        raise RewardkitError(f"--ensemble_aggregate: accepted values are {', '.join(ENSEMBLE_AGGREGATES)}")
    if args.step_contrast_weight and args.train_on_last_step_only:
        raise RewardkitError(
            "--step_contrast_weight trains the step where two solutions part, --train_on_last_step_only "
            "only the last step: choose one"
        )
    if args.length_debias and args.ensemble_size > 1:
        raise RewardkitError("--length_debias and --ensemble_size > 1: choose one (each needs its own heads)")
    if args.length_debias and args.export != "merged":
        raise RewardkitError(
            "--length_debias exports the quality head as a plain checkpoint: use --export merged"
        )


# transformers 5 removed some TrainingArguments that MedicalGPT's scripts pass; translate them.
# transformers 5 reads a --warmup_steps below 1 as a ratio of the training steps
LEGACY_FLAGS = {"--evaluation_strategy": "--eval_strategy", "--warmup_ratio": "--warmup_steps"}
DROPPED_FLAGS = {"--overwrite_output_dir"}  # v5 always writes into output_dir
BOOL_LEGACY = {"--group_by_length": ("--train_sampling_strategy", "group_by_length")}


def translate_legacy_config(values: dict) -> dict:
    """`translate_legacy_args` for a config file's {option: value} mapping."""
    out = {}
    for key, value in values.items():
        flag = f"--{key}"
        if flag in DROPPED_FLAGS:
            continue
        if flag in BOOL_LEGACY:
            if value is True or str(value).lower() == "true":
                name, choice = BOOL_LEGACY[flag]
                out[name[2:]] = choice
            continue
        out[LEGACY_FLAGS.get(flag, flag)[2:]] = value
    return out


def translate_legacy_args(argv: list[str]) -> list[str]:
    """Rewrite flags that transformers 5 no longer knows into their current spelling."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        takes_bool = i + 1 < len(argv) and argv[i + 1].lower() in ("true", "false")
        if name in DROPPED_FLAGS:
            i += 1 + (not eq and takes_bool)
            continue
        if name in BOOL_LEGACY:
            on = (value or (argv[i + 1] if takes_bool and not eq else "true")).lower() == "true"
            if on:
                out += list(BOOL_LEGACY[name])
            i += 1 + (not eq and takes_bool)
            continue
        out.append(LEGACY_FLAGS.get(name, name) + (eq + value if eq else ""))
        i += 1
    return out
