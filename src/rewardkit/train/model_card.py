"""The exported checkpoint's model card (README.md): what it is, what it was trained on, how it did."""

from __future__ import annotations

from pathlib import Path

# Hub ids of the packaged models, for the card's base_model
PACKAGED_HUB_IDS = {
    "packaged:minilm": "sentence-transformers/all-MiniLM-L6-v2",
    "packaged:smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct",
}
_SHOWN = (
    "eval_accuracy",
    "eval_loss",
    "eval_margin",
    "eval_rewards_chosen",
    "eval_rewards_rejected",
    "eval_samples",
)


def write_model_card(
    output_dir: str | Path,
    *,
    base_model: str,
    data: list[str],
    eval_metrics: dict | None,
    use_peft: bool,
    template: str,
    model_id: str | None = None,
) -> Path:
    """Write `output_dir/README.md`: Hub metadata (base_model, library_name, tags, pipeline_tag), the
    training data, the run's measured validation figures and a scoring snippet.

    Args:
        base_model: `--model_name_or_path` (a Hub id is written to the metadata; a local path only in the text).
        data: the training data as given (paths, Hub names, dataset_info entries).
        eval_metrics: the Trainer's validation metrics of this run, or None when there was no validation.
        use_peft: LoRA (merged into the weights) or full fine-tuning.
        template: the chat template's description, as logged.
        model_id: this model's Hub repo when it is pushed (used in the snippet; else a folder path).
    """
    hub_id = PACKAGED_HUB_IDS.get(base_model) or (base_model if _looks_like_hub_id(base_model) else None)
    meta = ["---", "library_name: transformers", "pipeline_tag: text-classification"]
    meta += [f"base_model: {hub_id}"] if hub_id else []
    meta += ["tags:", "- reward-model", "- rewardkit", "- bradley-terry", "---", ""]
    if eval_metrics:
        rows = [
            f"| {k.removeprefix('eval_')} | {_fmt(eval_metrics[k])} |" for k in _SHOWN if k in eval_metrics
        ]
        figures = "\n".join(["| metric | value |", "|---|---|", *rows])
    else:
        figures = "No validation set was used in this run, so there are no measured figures."
    body = f"""# Reward model

A Bradley-Terry reward model (one scalar per conversation, read at its last token) trained with
rewardkit from `{base_model}` ({"LoRA, merged" if use_peft else "full fine-tuning"}).
Chat template: {template}.

## Training data

{chr(10).join(f"- `{d}`" for d in data) or "- (not recorded)"}

## Validation (measured in this run)

{figures}

## Scoring

```python
from transformers import AutoModelForSequenceClassification, AutoTokenizer

rm = AutoModelForSequenceClassification.from_pretrained("{model_id or "path/to/this/folder"}")
tok = AutoTokenizer.from_pretrained("{model_id or "path/to/this/folder"}")
conv = [{{"role": "user", "content": "What is 2+2?"}}, {{"role": "assistant", "content": "4"}}]
enc = tok.apply_chat_template(conv, tokenize=True, return_tensors="pt", return_dict=True)
reward = rm(**enc).logits[0][0].item()
```

`config.json` sets `problem_type: regression`, so `pipeline("text-classification")` returns the raw
reward; `reward_mean`/`reward_std` (also `mean`/`std`) are the validation rewards' statistics, for
normalising. Or: `rewardkit score --model THIS_FOLDER --input conversations.jsonl --output scored.jsonl`.
"""
    path = Path(output_dir) / "README.md"
    path.write_text("\n".join(meta) + body, encoding="utf-8")
    return path


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not Path(name).exists() and not name.startswith((".", "~"))


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
