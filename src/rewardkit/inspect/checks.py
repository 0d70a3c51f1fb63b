"""`rewardkit inspect model --check`: is the reward invariant to how it is computed?

Each check scores the same conversations two ways and reports the largest absolute difference:

* bos: BOS tokens at the start of every conversation (more than one is the classic double-BOS bug);
* batch: each conversation alone vs all of them in one `score_detailed` call;
* padding: one forward of all rows padded on the left vs on the right (classifiers on decoders);
* prefix_sharing: `score_groups` with the group's prompt read once vs every conversation in full;
* dtype: float32 weights vs the serving dtype (`--dtype`), the model loaded twice;
* snippet: the seed article's one-at-a-time snippet (`AutoModelForSequenceClassification`,
  `apply_chat_template(tokenize=True, return_tensors="pt")`, `logits[0][0]`) vs rewardkit's batched path.

A check that does not apply to a kind is skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rewardkit.scorers.base import Group, Messages


@dataclass
class Check:
    name: str
    status: str  # "pass", "FAIL" or "skip"
    max_diff: float | None = None
    tolerance: float | None = None
    note: str = ""


def _judge(name: str, a: Sequence[float], b: Sequence[float], tolerance: float, note: str) -> Check:
    diff = max((abs(x - y) for x, y in zip(a, b)), default=0.0)
    return Check(name, "pass" if diff <= tolerance else "FAIL", diff, tolerance, note)


def check_bos(rm, conversations: Sequence[Messages]) -> Check:
    from rewardkit.inspect.view import scoring_view

    if rm.kind in ("function", "generative"):
        return Check("bos", "skip", note=f"kind {rm.kind} is not fed token ids by rewardkit")
    views = [scoring_view(rm, list(c)) for c in conversations]
    worst = max(v["bos_leading"] for v in views)
    bad = sum(v["double_bos"] for v in views)
    note = f"{bad} of {len(views)} conversations start with more than one BOS" if bad else "one BOS at most"
    return Check("bos", "FAIL" if bad else "pass", float(worst), 1.0, note)


def check_batch(rm, conversations: Sequence[Messages], tolerance: float) -> Check:
    alone = [rm.score_detailed([c])[0].score for c in conversations]
    together = [s.score for s in rm.score_detailed(list(conversations))]
    return _judge("batch", alone, together, tolerance, f"1 vs {len(conversations)} conversations per call")


def check_padding(rm, conversations: Sequence[Messages], tolerance: float) -> Check:
    import torch

    from rewardkit.core.batching import pad_rows
    from rewardkit.data.tokenize import encode_for_scoring
    from rewardkit.scorers.classifier import ClassifierRM

    if not isinstance(rm, ClassifierRM):
        why = "packed rows, or right padding only" if rm.kind == "dpo" else "no padded batches"
        return Check("padding", "skip", note=f"kind {rm.kind}: {why}")
    if rm.pad_side == "right" and rm.kind != "value_head" and not _decoder(rm):
        return Check("padding", "skip", note="an encoder reads its first token and is right-padded only")
    rows = [encode_for_scoring(rm.tokenizer, list(c), rm.max_length)[0] for c in conversations]
    if len({len(r) for r in rows}) < 2:
        return Check("padding", "skip", note="every conversation has the same length: nothing is padded")
    pad_id = rm.tokenizer.pad_token_id if rm.tokenizer.pad_token_id is not None else 0
    out = {}
    with torch.no_grad():
        for side in ("left", "right"):
            ids, mask = pad_rows(rows, pad_id, side)
            out[side] = (
                rm.forward(ids.to(rm.device), mask.to(rm.device)).float().cpu().reshape(len(rows), -1)[:, 0]
            )
        alone = [
            float(rm.forward(*(t.to(rm.device) for t in pad_rows([r], pad_id))).float().reshape(-1)[0])
            for r in rows
        ]
    left, right = out["left"].tolist(), out["right"].tolist()
    worst = max(
        _judge("", left, right, tolerance, ""),
        _judge("", left, alone, tolerance, ""),
        key=lambda c: c.max_diff,
    )
    return Check(
        "padding", worst.status, worst.max_diff, tolerance, "left vs right padding vs unpadded, one batch"
    )


def _decoder(rm) -> bool:
    from rewardkit.core.rewards import is_decoder

    try:
        return is_decoder(rm.model) if rm.model is not None else True
    except ValueError:
        return True


def check_prefix_sharing(rm, groups: Sequence[Group], tolerance: float) -> Check:
    if not groups:
        return Check("prefix_sharing", "skip", note="no pairs or groups in the rows checked")
    if rm.kind in ("function", "generative"):
        return Check("prefix_sharing", "skip", note=f"kind {rm.kind} reads no shared prefix")
    if rm.kind != "dpo" and not getattr(rm, "prefix_sharing", False):
        return Check(
            "prefix_sharing", "skip", note="prefix sharing is off for this model (encoder or custom head)"
        )
    shared = [s.score for g in rm.score_groups(groups) for s in g]
    full = [s.score for g in groups for s in rm.score_detailed(g.conversations())]
    return _judge("prefix_sharing", shared, full, tolerance, f"{len(groups)} groups, prompt once vs in full")


def check_dtype(rm, conversations, reload: Callable | None, dtype: str | None, tolerance: float) -> Check:
    if not dtype or dtype == "float32":
        return Check("dtype", "skip", note="give --dtype bfloat16 (or float16) to compare with float32")
    if reload is None or rm.kind == "function":
        return Check("dtype", "skip", note=f"kind {rm.kind} has no weights to load in another dtype")
    fp32 = reload("float32")
    other = reload(dtype)
    a = [s.score for s in fp32.score_detailed(list(conversations))]
    b = [s.score for s in other.score_detailed(list(conversations))]
    return _judge("dtype", a, b, tolerance, f"float32 vs {dtype}")


def check_snippet(rm, conversations, path: str | None, tolerance: float) -> Check:
    """The seed article's snippet, one conversation at a time, vs rewardkit's batched scores."""
    if rm.kind != "seq_classifier" or not path:
        return Check(
            "snippet", "skip", note="the snippet loads AutoModelForSequenceClassification checkpoints"
        )
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rewardkit.errors import first_line

    snippet = []
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32).eval()
        tok = AutoTokenizer.from_pretrained(path)
        with torch.no_grad():
            for conv in conversations:
                enc = tok.apply_chat_template(list(conv), tokenize=True, return_tensors="pt")
                inputs = dict(enc) if hasattr(enc, "keys") else {"input_ids": enc}
                snippet.append(float(model(**inputs).logits[0][0]))
    except (OSError, ValueError) as e:  # a GGUF file, or a tokenizer with no chat template of its own
        return Check("snippet", "skip", note=f"the snippet cannot run on {path}: {first_line(e)}")
    batched = [s.score for s in rm.score_detailed(list(conversations))]
    return _judge(
        "snippet", snippet, batched, tolerance, "one at a time (the article) vs batched (rewardkit)"
    )


def run_checks(
    rm,
    conversations: Sequence[Messages],
    groups: Sequence[Group] = (),
    *,
    path: str | None = None,
    reload: Callable | None = None,
    dtype: str | None = None,
    tolerance: float = 1e-4,
    dtype_tolerance: float = 0.1,
) -> list[Check]:
    """Every check on `rm` (see the module docstring); `reload(dtype)` loads the same model in a dtype."""
    return [
        check_bos(rm, conversations),
        check_batch(rm, conversations, tolerance),
        check_padding(rm, conversations, tolerance),
        check_prefix_sharing(rm, groups, tolerance),
        check_dtype(rm, conversations, reload, dtype, dtype_tolerance),
        check_snippet(rm, conversations, path, tolerance),
    ]


def format_checks(checks: Sequence[Check]) -> str:
    """The checks as a markdown table."""
    lines = ["| check | result | largest difference | tolerance | note |", "|---|---|---|---|---|"]
    for c in checks:
        diff = "-" if c.max_diff is None else f"{c.max_diff:.3g}"
        tol = "-" if c.tolerance is None else f"{c.tolerance:g}"
        lines.append(f"| {c.name} | {c.status} | {diff} | {tol} | {c.note} |")
    return "\n".join(lines) + "\n"
