"""The typed arguments of `rewardkit train`: the seed's three dataclasses plus `transformers.TrainingArguments`.

One schema, parsed by `HfArgumentParser` from the command line or a YAML/JSON file. Field names are
MedicalGPT's, so its `run_rm.sh` command lines run unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rewardkit.errors import RewardkitError

# Each setting's accepted values, defined once (the loaders validate against these same tuples).
KINDS = ("auto", "seq_classifier", "value_head", "remote_code", "function", "generative")
DTYPE_NAMES = ("auto", "bfloat16", "float16", "float32")
JUDGE_MODES = ("pairwise", "pointwise", "logprob")
TEMPLATES_HELP = "vicuna, alpaca, chatml, qwen, llama3, plain, or auto (the tokenizer's own chat template)"


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
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Accepted for MedicalGPT."})

    def __post_init__(self):
        if not (self.dataset_name or self.train_file_dir or self.validation_file_dir):
            raise RewardkitError("give --train_file_dir (file or folder) or --dataset_name")
        if not 0 <= self.validation_split_percentage < 100:
            raise RewardkitError("--validation_split_percentage must be in [0, 100)")
        if self.max_length is not None and self.max_length < 8:
            raise RewardkitError("--max_length must be at least 8")

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

    def __post_init__(self):
        if self.lora_rank < 1:
            raise RewardkitError("--lora_rank must be at least 1")
        if self.center_rewards_coefficient < 0:
            raise RewardkitError("--center_rewards_coefficient must be >= 0")


# transformers 5 removed some TrainingArguments that MedicalGPT's scripts pass; translate them.
LEGACY_FLAGS = {"--evaluation_strategy": "--eval_strategy"}
DROPPED_FLAGS = {"--overwrite_output_dir"}  # v5 always writes into output_dir
BOOL_LEGACY = {"--group_by_length": ("--train_sampling_strategy", "group_by_length")}


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
        default=None, metadata={"help": "Tokens per conversation (default: the model's limit)."}
    )
    batch_tokens: int = field(default=16384, metadata={"help": "Padded tokens per forward pass."})
    mode: str = field(
        default="pairwise",
        metadata={"help": "Generative judges: pairwise, pointwise or logprob.", "choices": list(JUDGE_MODES)},
    )
    max_new_tokens: int = field(
        default=256, metadata={"help": "Generative judges: tokens generated per verdict."}
    )

    def __post_init__(self):
        if not self.model:
            raise RewardkitError("--model is required (a model folder or module.path:function)")
        from rewardkit.assets import resolve_packaged

        self.model, self.gguf_file = resolve_packaged(self.model, self.gguf_file)
        if self.batch_tokens < 1:
            raise RewardkitError("--batch_tokens must be at least 1")

    def load(self):
        """The reward model these arguments describe."""
        from rewardkit.scorers.load import load_reward_model

        options = dict(
            gguf_file=self.gguf_file,
            dtype=self.torch_dtype,
            attn_implementation=self.attn_implementation,
            device_map=self.device_map,
            trust_remote_code=self.trust_remote_code,
            allow_pickle=self.allow_pickle,
            template_name=self.template_name,
            max_length=self.max_length,
            batch_tokens=self.batch_tokens,
        )
        if self.kind == "generative" or (self.kind == "auto" and self.mode != "pairwise"):
            options.update(mode=self.mode, max_new_tokens=self.max_new_tokens)
        return load_reward_model(self.model, kind=self.kind, **options)


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

    def __post_init__(self):
        if not self.data:
            raise RewardkitError("--data is required: one or more preference files or folders")


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
    backend: str = field(
        default="torch",
        metadata={
            "help": "torch, or vllm (sequence classifiers on GPU, vLLM installed).",
            "choices": ["torch", "vllm"],
        },
    )
    log_level: str = field(default="info", metadata={"help": "uvicorn log level."})
