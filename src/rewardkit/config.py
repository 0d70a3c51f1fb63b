"""The typed arguments of every command, each setting's accepted values defined once.

`rewardkit train` parses the seed's three dataclasses plus `transformers.TrainingArguments` (field names
are MedicalGPT's, so its `run_rm.sh` command lines run unchanged); `score`, `eval` and `serve` parse
`RewardModelArguments` (how to load any reward model) plus their own `ScoreArguments`, `EvalArguments`
or `ServeArguments`. All are parsed by `HfArgumentParser` from the command line and a YAML/JSON
`--config` file, and can be built directly in Python.

Example:
    >>> args = RewardModelArguments(model="my_rewards:length_penalty", kind="function")
    >>> args.kind, args.torch_dtype, args.template_name
    ('function', 'float32', 'auto')
    >>> RewardModelArguments(model="m", torch_dtype="float8")
    Traceback (most recent call last):
    rewardkit.errors.RewardkitError: --torch_dtype float8: accepted values are auto, bfloat16, float16, float32
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rewardkit.data.loading import SPLITS
from rewardkit.data.templates import check_template_name, templates_help
from rewardkit.errors import RewardkitError

# Each setting's accepted values, defined once (the loaders validate against these same tuples).
KINDS = ("auto", "seq_classifier", "value_head", "remote_code", "function", "generative", "dpo", "prm")
DTYPE_NAMES = ("auto", "bfloat16", "float16", "float32")
JUDGE_MODES = ("pairwise", "pointwise", "logprob")
ENSEMBLE_AGGREGATES = ("mean", "min", "mean_minus_std")  # what `Score.score` of a head ensemble is
TEMPLATES_HELP = templates_help()  # from the template registry (data/templates.py); validated against it


def check_choice(flag: str, value, accepted: tuple) -> None:
    """Raise naming `--flag` when `value` is not one of `accepted` (argparse checks only the command line)."""
    if value not in accepted:
        raise RewardkitError(f"--{flag} {value}: accepted values are {', '.join(accepted)}")


def check_at_least(flag: str, value: int | None, low: int) -> None:
    """Raise naming `--flag` when `value` (None: unset) is below `low`."""
    if value is not None and value < low:
        raise RewardkitError(f"--{flag} {value}: must be at least {low}")


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
        if bool(self.dataset_info) != bool(self.dataset):
            raise RewardkitError(
                "--dataset_info and --dataset go together (a dataset_info.json and entry names)"
            )
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
    ):
        if getattr(args, name) < 0:
            raise RewardkitError(f"--{name} must be >= 0, got {getattr(args, name)}")
    if args.ensemble_size < 1:
        raise RewardkitError(f"--ensemble_size must be at least 1, got {args.ensemble_size}")
    if args.ensemble_aggregate not in ENSEMBLE_AGGREGATES:
        raise RewardkitError(f"--ensemble_aggregate: accepted values are {', '.join(ENSEMBLE_AGGREGATES)}")
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
        if bool(self.dataset_info) != bool(self.dataset):
            raise RewardkitError(
                "--dataset_info and --dataset go together (a dataset_info.json and entry names)"
            )
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
