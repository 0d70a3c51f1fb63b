"""`load_reward_model`: one entry point for every kind; `kind="auto"` decides from the checkpoint."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from rewardkit.config import KINDS
from rewardkit.errors import RewardkitError

logger = logging.getLogger(__name__)


def detect_kind(path: str, gguf_file: str | None = None) -> tuple[str, str]:
    """(kind, why) for a model path, from its files and config.json alone (no weights loaded)."""
    if ":" in path and not Path(path).exists():
        return "function", f"'{path}' has the form module.path:function"
    folder = Path(path)
    if not folder.is_dir():
        raise RewardkitError(
            f"--model {path}: no such folder (models are loaded from local paths; "
            "a Python scorer is given as module.path:function)"
        )
    if (folder / "value_head.safetensors").is_file() or (folder / "value_head.bin").is_file():
        return "value_head", "value_head.safetensors beside the model (LLaMA-Factory layout)"
    if gguf_file:
        return (
            "seq_classifier",
            "a GGUF file (loaded as a sequence classifier; use --kind generative for a judge)",
        )
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise RewardkitError(f"--model {path}: no config.json; pass --kind and --gguf_file for GGUF models")
    config = json.loads(config_file.read_text())
    archs = config.get("architectures") or []
    arch = archs[0] if archs else ""
    auto_map = config.get("auto_map") or {}
    if "AutoModelForSequenceClassification" in auto_map or (auto_map and not arch.endswith("ForCausalLM")):
        return "remote_code", f"config.json auto_map names custom code ({arch or 'no architecture'})"
    if arch.endswith("ForSequenceClassification"):
        return "seq_classifier", f"architecture {arch}"
    if arch.endswith("ForTokenClassification") and "step_separator" in config:
        return "prm", f"architecture {arch} with a step_separator (process reward model)"
    from rewardkit.scorers.custom import find_value_head_prefix

    # OpenRLHF saves its reward model with architecture "RewardModel" (a class it builds at run time),
    # so any non-classifier checkpoint is checked for a value head before giving up.
    prefix = find_value_head_prefix(folder)
    if prefix:
        return "value_head", f"{arch or 'a'} checkpoint with a '{prefix}' value head (OpenRLHF layout)"
    if arch.endswith("ForCausalLM"):
        return "generative", f"architecture {arch} with no reward head: used as a generative judge"
    raise RewardkitError(
        f"--model {path}: cannot tell the kind from architecture '{arch}'; pass --kind ({', '.join(KINDS[1:])})"
    )


def load_reward_model(path: str, kind: str = "auto", **options):
    """Load any reward model behind one interface (`score`, `score_pairs`, `compare`, `score_detailed`).

    Args:
        path: a local model folder, or `module.path:function` for a Python scorer.
        kind: auto, seq_classifier, value_head, remote_code, function, generative or dpo (never detected).
        **options: passed to the kind's loader: gguf_file, dtype, attn_implementation, device_map,
            trust_remote_code, template_name, max_length, batch_tokens; for judges also mode,
            max_new_tokens, seed, batch_size; for dpo also reference, reference_gguf_file, beta,
            reference_free_mean; for head ensembles ensemble_aggregate, ensemble_lambda.

    Example:
        A trained checkpoint is needed (`rewardkit demo` writes outputs/demo/model), hence the skips;
        `rewardkit`'s package docstring has one that runs with a Python function.

        >>> rm = load_reward_model("outputs/demo/model")  # doctest: +SKIP
        >>> rm.kind, rm.detected_because  # doctest: +SKIP
        ('seq_classifier', 'architecture BertForSequenceClassification')
        >>> rm.compare("2+2?", ["4", "5"]).ranking  # doctest: +SKIP
        [0, 1]
    """
    if kind not in KINDS:
        raise RewardkitError(f"--kind {kind}: accepted kinds are {', '.join(KINDS)}")
    why = "given by --kind"
    if not path.startswith("packaged:"):
        from rewardkit.core.loading import resolve_hub_model

        local = resolve_hub_model(path, trust_remote_code=bool(options.get("trust_remote_code")))
        if local != path:
            logger.info("--model %s: the Hub model in the local cache, %s", path, local)
            path = local
    if kind == "auto":
        kind, why = detect_kind(path, options.get("gguf_file"))
    logger.info("reward model %s: kind %s (%s)", path, kind, why)
    judge_options = {k: options.pop(k) for k in ("mode", "max_new_tokens", "seed") if k in options}
    if kind in ("generative", "function") and "batch_size" in options:
        judge_options["batch_size"] = options.pop("batch_size")
    options.pop("batch_size", None)
    # head ensembles are sequence classifiers (docs/robustness.md); other kinds have one reward
    ensemble_options = {k: options.pop(k) for k in ("ensemble_aggregate", "ensemble_lambda") if k in options}
    if kind == "seq_classifier":
        from rewardkit.scorers.seq_classifier import load_seq_classifier

        rm = load_seq_classifier(path, **options, **ensemble_options)
    elif kind == "value_head":
        from rewardkit.scorers.custom import load_value_head

        rm = load_value_head(path, **options)
    elif kind == "remote_code":
        from rewardkit.scorers.custom import load_remote_code

        rm = load_remote_code(path, **options)
    elif kind == "dpo":
        from rewardkit.scorers.dpo import load_dpo

        rm = load_dpo(path, **options)
    elif kind == "function":
        from rewardkit.scorers.function import load_function

        rm = load_function(path, **judge_options, **options)
    elif kind == "prm":
        from rewardkit.scorers.prm import load_prm

        rm = load_prm(path, **options)
    else:
        from rewardkit.scorers.generative import load_judge

        rm = load_judge(path, **judge_options, **options)
    rm.detected_because = why
    return rm
