"""Checks a training run passes before anything is loaded, so a bad setting costs a second, not a model load.

MedicalGPT's `scripts/run_rm.sh`, run as it is on a machine without a GPU, used to stop at `--bf16`
(transformers asks for `--use_cpu`) and then, after loading the model, with a traceback because
`--report_to tensorboard` needs tensorboard. Here `--bf16` on a machine with no GPU runs on the CPU
(`cpu_bf16_argv`), and a reporting integration or `--push_to_hub` that cannot work is a one-line
error at once (`check_run`).
"""

from __future__ import annotations

import importlib.util
import logging
import os

from rewardkit.errors import RewardkitError

logger = logging.getLogger("rewardkit.train")

# --report_to name -> (modules any of which provides it, what to install)
INTEGRATIONS = {
    "tensorboard": (("tensorboard", "tensorboardX"), "tensorboard"),
    "wandb": (("wandb",), "wandb"),
    "mlflow": (("mlflow",), "mlflow"),
    "comet_ml": (("comet_ml",), "comet_ml"),
    "clearml": (("clearml",), "clearml"),
    "swanlab": (("swanlab",), "swanlab"),
    "trackio": (("trackio",), "trackio"),
    "neptune": (("neptune",), "neptune"),
}


def cpu_bf16_argv(argv: list[str], gpu_available: bool) -> list[str]:
    """`argv` with `--use_cpu true` added when it asks for bf16 on a machine with no GPU.

    transformers refuses `--bf16` without a GPU unless `--use_cpu` is set; bf16 mixed precision does
    run on a CPU (torch autocast), so a GPU recipe still runs, slowly, as it is.
    """
    flags = {a.partition("=")[0]: a for a in argv}
    wants_bf16 = any(name in flags and _on(argv, name) for name in ("--bf16", "--bf16_full_eval"))
    if gpu_available or not wants_bf16 or "--use_cpu" in flags:
        return argv
    logger.warning("--bf16 on a machine with no GPU: training on the CPU in bf16 (--use_cpu true added)")
    return argv + ["--use_cpu", "true"]


def check_run(training_args) -> None:
    """Refuse at once a reporting integration that is not installed, or a --push_to_hub that cannot push.

    Raises:
        RewardkitError: one line naming the flag and what would work.
    """
    report_to = training_args.report_to or []
    for name in [report_to] if isinstance(report_to, str) else report_to:
        if name in INTEGRATIONS:
            modules, package = INTEGRATIONS[name]
            if not any(importlib.util.find_spec(m) for m in modules):
                extra = " (or pip install 'rewardkit[tensorboard]')" if name == "tensorboard" else ""
                raise RewardkitError(
                    f"--report_to {name}: {package} is not installed; pip install {package}{extra}, "
                    "or pass --report_to none"
                )
    if training_args.push_to_hub:
        _check_hub(training_args)


def _check_hub(training_args) -> None:
    offline = [
        v
        for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
        if os.environ.get(v, "").upper() in ("1", "ON", "YES", "TRUE")
    ]
    if offline:
        raise RewardkitError(
            f"--push_to_hub: {offline[0]} is set, so nothing can be uploaded; unset it or drop --push_to_hub"
        )
    from huggingface_hub import get_token

    if not (training_args.hub_token or get_token()):
        raise RewardkitError(
            "--push_to_hub: no Hugging Face token (run `hf auth login`, set HF_TOKEN, or pass --hub_token)"
        )


def push_folder(output_dir: str, hub_model_id: str | None, token: str | None, private: bool | None) -> str:
    """Upload the exported folder (the merged checkpoint, tokenizer and model card) to the Hub.

    Returns:
        The repo id written to.
    """
    from pathlib import Path

    from huggingface_hub import HfApi

    api = HfApi(token=token)
    repo_id = hub_model_id or Path(output_dir).resolve().name
    try:
        repo_id = api.create_repo(repo_id, exist_ok=True, private=private).repo_id
        api.upload_folder(
            repo_id=repo_id, folder_path=output_dir, commit_message="rewardkit train: reward model"
        )
    except Exception as e:  # huggingface_hub raises HTTP, auth and network errors of many types
        raise RewardkitError(
            f"--push_to_hub: upload to {repo_id} failed: {type(e).__name__}: {e}".splitlines()[0]
        ) from e
    logger.info("pushed %s to the Hub as %s", output_dir, repo_id)
    return repo_id


def _on(argv: list[str], name: str) -> bool:
    """Whether a boolean flag is on: `--bf16`, `--bf16 true`, `--bf16=True`."""
    for i, arg in enumerate(argv):
        flag, eq, value = arg.partition("=")
        if flag == name:
            if eq:
                return value.lower() in ("true", "1", "yes")
            following = argv[i + 1].lower() if i + 1 < len(argv) else ""
            return following not in ("false", "0", "no")
    return False
