"""A chat LM used as a judge: pairwise verdicts, 1-10 ratings, or verdict/rating probabilities.

Three modes, chosen once at construction:

* ``"pairwise"``: the judge writes a short explanation ending in ``[[A]]``, ``[[B]]`` or ``[[C]]``
  (tie). Every pair is judged in both orders (A=x,B=y and A=y,B=x) with greedy decoding. A tie,
  an unparsable output, or verdicts that disagree between the orders all end up as half a win;
  parse failures and order disagreements are counted in :meth:`GenerativeJudge.stats`.
* ``"pointwise"``: the judge writes an explanation ending in ``Rating: [[N]]``, N in 1..10. An
  unparsable rating scores ``FALLBACK_RATING`` (5.5, the middle of the scale) with
  ``sub_scores["parse_failed"] = 1``.
* ``"logprob"``: nothing is generated. The assistant turn is prefilled up to the decision
  (``Verdict: [[`` / ``Rating: [[``) and the next-token distribution is read. Pairwise:
  P(A) is the softmax over the logits of the tokens "A" and "B" only, and
  P(x beats y) = (P_A(x first) + P_B(y first)) / 2, so P(x>y) + P(y>x) = 1. Pointwise: the
  expected rating under the softmax over the tokens "1".."9"; where "10" is two tokens ("1", "0")
  (Llama/SmolLM tokenizers) the mass of "1" is split between 1 and 10 by a second step that
  compares "0" with "]]" after "1". If a tokenizer allows neither, ratings are 1..9.

Generation stops at the first ``]]``: the first bracketed item is the decision.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from rewardkit.config import JUDGE_MODES, check_at_least, check_choice
from rewardkit.errors import RewardkitError
from rewardkit.scorers import judge_prompts as jp
from rewardkit.scorers.base import Group, GroupMixin, Messages, Score, as_messages, split_groups
from rewardkit.scorers.judge_fit import fit_prompt

logger = logging.getLogger(__name__)

FALLBACK_RATING = 5.5


# ---------------------------------------------------------------- the judge
class GenerativeJudge(GroupMixin):
    """A local causal chat LM as a reward model (kind "generative").

    Example:
        A causal chat LM folder is needed (e.g. `rewardkit.assets.smollm2_safetensors(cache)`, a minute
        to convert the first time), hence the skips:

        >>> judge = GenerativeJudge("models/smollm2-135m-instruct", mode="logprob")  # doctest: +SKIP
        >>> chosen, rejected = judge.score_pairs(["2+2?"], ["4"], ["5"])  # doctest: +SKIP
        >>> judge.stats()["parse_failure_rate"]  # logprob reads probabilities: never fails  # doctest: +SKIP
        0.0
    """

    kind = "generative"

    def __init__(
        self,
        model_path: str | Path,
        mode: str = "pairwise",
        max_new_tokens: int = 256,
        seed: int = 0,
        dtype: str | torch.dtype | None = None,
        device: str | None = None,
        batch_size: int = 8,
        trust_remote_code: bool = False,
        max_length: int = 2048,
        gguf_file: str | None = None,
        attn_implementation: str | None = None,
        allow_pickle: bool = False,
    ):
        check_choice("mode", mode, JUDGE_MODES)
        check_at_least("max_new_tokens", max_new_tokens, 1)
        check_at_least("max_length", max_length, 16)
        if batch_size < 1:
            raise RewardkitError(f"batch_size {batch_size}: must be at least 1")
        self.mode, self.max_new_tokens, self.seed = mode, max_new_tokens, seed
        self.batch_size, self.max_length = batch_size, max_length
        self.model, self.tokenizer = _load(
            Path(model_path), dtype, device, trust_remote_code, gguf_file, attn_implementation, allow_pickle
        )
        self.last_generations: list[str] = []  # raw judge outputs of the latest call, for inspection
        self.reset_stats()
        if mode == "logprob":
            self._verdict_ids = jp.decision_tokens(self.tokenizer, jp.VERDICT_PREFILL, ["A", "B"])
            self._rating_ids, self._ten_split = jp.rating_tokens(self.tokenizer)

    @property
    def answers_alone(self) -> bool:
        """Only a pointwise judge rates an answer on its own; pairwise and logprob judges compare."""
        return self.mode == "pointwise"

    # ---- protocol
    def score_detailed(self, conversations: Sequence[Messages]) -> list[Score]:
        """Rate each conversation's last assistant answer 1..10 (modes pointwise and logprob)."""
        if self.mode == "pairwise":
            raise RewardkitError(
                "score_detailed rates one answer at a time, which needs --mode pointwise or --mode logprob "
                "(this judge has --mode pairwise); use score_pairs or compare for pairwise verdicts"
            )
        prompts = []
        for i, conv in enumerate(conversations):
            if not conv or conv[-1]["role"] != "assistant":
                raise RewardkitError(f"conversation {i}: must end with the assistant answer to rate")
            prompts.append(self._fit(list(conv[:-1]), [conv[-1]["content"]], pointwise=True))
        if not prompts:
            return []
        if self.mode == "logprob":
            return self._rate_logprob(prompts)
        return self._rate_generated(prompts)

    def score_groups(self, groups: Sequence[Group]) -> list[list[Score]]:
        """Pointwise: each answer's rating. Pairwise/logprob: every pair of a group's answers judged in
        both orders; an answer's score is its mean win share against the others (for a pair: P(first
        beats second) and its complement), a lone answer scores 0.5 (nothing to compare it with).
        """
        if self.mode == "pointwise":
            return split_groups(self.score_detailed([c for g in groups for c in g.conversations()]), groups)
        pairs = [
            (g, i, j)
            for g, group in enumerate(groups)
            for i in range(len(group.answers))
            for j in range(i + 1, len(group.answers))
        ]
        judged = self.judge_pairs(
            [groups[g].prompt for g, _, _ in pairs],
            [groups[g].answers[i] for g, i, _ in pairs],
            [groups[g].answers[j] for g, _, j in pairs],
        )
        mine: list[list[list[tuple[float, Score]]]] = [[[] for _ in g.answers] for g in groups]
        for (g, i, j), s in zip(pairs, judged):
            mine[g][i].append((s.score, s))
            mine[g][j].append((1.0 - s.score, s))
        out = []
        for group in mine:
            scores = []
            for results in group:
                if not results:
                    scores.append(Score(0.5))
                    continue
                sub = dict(results[0][1].sub_scores, p_win=results[0][0]) if len(results) == 1 else {}
                scores.append(
                    Score(
                        sum(w for w, _ in results) / len(results),
                        num_tokens=max(s.num_tokens for _, s in results),
                        truncated=any(s.truncated for _, s in results),
                        sub_scores=sub,
                    )
                )
            out.append(scores)
        return out

    # ---- pairwise judgments
    def judge_pairs(self, prompts, xs: Sequence[str], ys: Sequence[str]) -> list[Score]:
        """Judge x against y for each prompt, in both orders; `Score.score` is x's win share.

        `sub_scores` holds ``p_win``, ``order_consistent`` (1/0) and ``parse_failed`` (the fraction
        of the two judgments that gave no verdict), so averages over items are the rates.
        """
        if self.mode == "pointwise":
            raise RewardkitError(
                "judge_pairs needs --mode pairwise or --mode logprob (this judge has --mode pointwise)"
            )
        if not len(prompts) == len(xs) == len(ys):
            raise RewardkitError("judge_pairs: prompts, xs and ys must have the same length")
        if not prompts:
            return []
        built = []
        for p, x, y in zip(prompts, xs, ys):
            head = as_messages(p)
            built += [self._fit(head, [x, y], pointwise=False), self._fit(head, [y, x], pointwise=False)]
        if self.mode == "logprob":
            logits, _ = self._next_token_logits([b[0] for b in built])
            p_a = jp.two_way_prob(logits[:, self._verdict_ids[0]], logits[:, self._verdict_ids[1]]).tolist()
            results = [jp.combine_probs(p_a[k], p_a[k + 1]) for k in range(0, len(built), 2)]
        else:
            outs = self._generate([b[0] for b in built])
            verdicts = [jp.parse_verdict(o) for o in outs]
            results = [jp.combine_verdicts(verdicts[k], verdicts[k + 1]) for k in range(0, len(built), 2)]
        scores = []
        for k, r in enumerate(results):
            self._counts["judgments"] += 2
            self._counts["parse_failures"] += r.parse_failures
            self._counts["pairs"] += 1
            self._counts["order_consistent"] += int(r.order_consistent)
            self._counts["order_inconsistent"] += int(r.parse_failures == 0 and not r.order_consistent)
            (_, n1, t1), (_, n2, t2) = built[2 * k], built[2 * k + 1]
            sub = {
                "p_win": r.p_win,
                "order_consistent": float(r.order_consistent),
                "parse_failed": r.parse_failures / 2,
            }
            scores.append(Score(score=r.p_win, num_tokens=max(n1, n2), truncated=t1 or t2, sub_scores=sub))
        return scores

    # ---- statistics
    def reset_stats(self) -> None:
        names = ("judgments", "parse_failures", "pairs", "order_consistent", "order_inconsistent")
        self._counts = dict.fromkeys(names, 0)

    def stats(self) -> dict[str, float]:
        """Counters since construction (or `reset_stats`) and the two rates (0.0 when nothing was judged).

        ``parse_failure_rate`` = parse_failures / judgments (one judgment = one order, or one rating);
        ``order_consistency_rate`` = pairs whose two orders both gave a verdict and agree / pairs.
        ``order_inconsistent`` counts pairs with two verdicts that disagree.
        """
        c = dict(self._counts)
        c["parse_failure_rate"] = c["parse_failures"] / c["judgments"] if c["judgments"] else 0.0
        c["order_consistency_rate"] = c["order_consistent"] / c["pairs"] if c["pairs"] else 0.0
        return c

    # ---- ratings
    def _rate_generated(self, prompts: list[tuple[str, int, bool]]) -> list[Score]:
        outs = self._generate([p[0] for p in prompts])
        scores = []
        for (_, n, trunc), out in zip(prompts, outs):
            rating = jp.parse_rating(out)
            self._counts["judgments"] += 1
            self._counts["parse_failures"] += int(rating is None)
            value = FALLBACK_RATING if rating is None else float(rating)
            sub = {"rating": value, "parse_failed": float(rating is None)}
            scores.append(Score(score=value, num_tokens=n, truncated=trunc, sub_scores=sub))
        return scores

    def _rate_logprob(self, prompts: list[tuple[str, int, bool]]) -> list[Score]:
        one = self._ten_split[0] if self._ten_split else None
        logits, after_one = self._next_token_logits([p[0] for p in prompts], follow=one)
        split = after_one[:, list(self._ten_split[1:])] if self._ten_split else None
        probs = jp.rating_probs(logits[:, self._rating_ids], split)
        expected = jp.expected_rating(probs).tolist()
        self._counts["judgments"] += len(prompts)
        return [
            Score(e, num_tokens=n, truncated=t, sub_scores={"expected_rating": e, "p_top": float(pr.max())})
            for (_, n, t), e, pr in zip(prompts, expected, probs)
        ]

    def _fit(self, history: Messages, answers: list[str], pointwise: bool) -> tuple[str, int, bool]:
        logprob = self.mode == "logprob"
        return fit_prompt(
            self.tokenizer,
            history,
            answers,
            pointwise=pointwise,
            verdict_only=logprob,
            max_length=self.max_length,
            reserve=1 if logprob else self.max_new_tokens,
        )

    # ---- model calls
    @torch.inference_mode()
    def _generate(self, texts: list[str]) -> list[str]:
        from transformers import GenerationConfig, StoppingCriteriaList

        config = GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.model.generation_config.eos_token_id or self.tokenizer.eos_token_id,
        )
        outs = [""] * len(texts)
        for rows in self._batches(texts):
            enc = self._encode([texts[i] for i in rows])
            stop = StoppingCriteriaList([_StopAfterDecision(self.tokenizer, enc["input_ids"].shape[1])])
            torch.manual_seed(self.seed)
            ids = self.model.generate(**enc, generation_config=config, stopping_criteria=stop)
            new = self.tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
            for i, text in zip(rows, new):
                outs[i] = text
        self.last_generations = outs
        return outs

    @torch.inference_mode()
    def _next_token_logits(self, texts: list[str], follow: int | None = None):
        """Last-position logits [n, vocab], and (if `follow`) the logits after appending that token."""
        order, firsts, seconds = [], [], []
        for rows in self._batches(texts):
            enc = self._encode([texts[i] for i in rows])
            mask = enc["attention_mask"]
            # left padding: positions count real tokens only, as generate() does
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            out = self.model(**enc, position_ids=pos, use_cache=follow is not None, logits_to_keep=1)
            order += rows
            firsts.append(out.logits[:, -1, :].float().cpu())
            if follow is not None:
                step = torch.full_like(enc["input_ids"][:, :1], follow)
                nxt = self.model(
                    input_ids=step,
                    attention_mask=torch.cat([mask, torch.ones_like(step)], dim=-1),
                    position_ids=pos[:, -1:] + 1,
                    past_key_values=out.past_key_values,
                    logits_to_keep=1,
                )
                seconds.append(nxt.logits[:, -1, :].float().cpu())
        back = torch.argsort(torch.tensor(order))
        return torch.cat(firsts)[back], (torch.cat(seconds)[back] if seconds else None)

    def _batches(self, texts: list[str]) -> list[list[int]]:
        """Row indices in batches of `batch_size`, similar lengths together so padding stays small."""
        rows = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        return [rows[k : k + self.batch_size] for k in range(0, len(rows), self.batch_size)]

    def _encode(self, texts: list[str]) -> dict:
        enc = self.tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
        return {k: v.to(self.model.device) for k, v in enc.items()}


class _StopAfterDecision:
    """Stops a row once its generated text holds "]]".

    transformers' own `stop_strings` fails on tokenizers whose decoder re-spaces tokens (its
    prefix search raises ValueError), so this decodes the new tokens instead.
    """

    def __init__(self, tokenizer, prompt_len: int):
        self.tokenizer, self.prompt_len = tokenizer, prompt_len

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_len :], skip_special_tokens=True)
        return torch.tensor(["]]" in t for t in texts], dtype=torch.bool, device=input_ids.device)


def load_judge(
    path: str,
    mode: str = "pairwise",
    max_new_tokens: int = 256,
    seed: int = 0,
    batch_size: int = 8,
    dtype: str | None = None,
    device_map: str | None = None,
    trust_remote_code: bool = False,
    max_length: int | None = None,
    gguf_file: str | None = None,
    attn_implementation: str | None = None,
    template_name: str | None = None,
    batch_tokens: int | None = None,
    allow_pickle: bool = False,
) -> GenerativeJudge:
    """`load_reward_model`'s entry for kind "generative": its option names mapped onto the judge.

    `template_name` and `batch_tokens` do not apply to judges (the tokenizer's own chat template
    renders the judge prompt; batches are `batch_size` rows) and are ignored with a log line.
    """
    if template_name is not None or batch_tokens is not None:
        logger.info("generative judge: template_name/batch_tokens are not used by judges; ignored")
    return GenerativeJudge(
        path,
        mode=mode,
        max_new_tokens=max_new_tokens,
        seed=seed,
        dtype=dtype,
        device=device_map,
        batch_size=batch_size,
        trust_remote_code=trust_remote_code,
        max_length=max_length or 2048,
        gguf_file=gguf_file,
        attn_implementation=attn_implementation,
        allow_pickle=allow_pickle,
    )


def _load(
    path: Path,
    dtype,
    device_map,
    trust_remote_code: bool,
    gguf_file: str | None,
    attn: str | None,
    allow_pickle: bool = False,
):
    """(model, tokenizer): on the GPU when there is one (as the classifiers), unless `--device_map` says."""
    from transformers import AutoModelForCausalLM

    from rewardkit.core.loading import (
        default_device,
        forget_gguf_quantizer,
        load_tokenizer,
        safe_weights,
        torch_dtype,
    )

    if gguf_file is not None and not (path / gguf_file).is_file():
        raise RewardkitError(f"--gguf_file {gguf_file}: not found in {path}")
    if gguf_file is None and not (path / "config.json").is_file():
        raise RewardkitError(
            f"--model {path}: no config.json; expected a local causal-LM folder (or --gguf_file)"
        )
    dtype = torch_dtype(dtype or "auto") if isinstance(dtype, str) or dtype is None else dtype
    device = default_device(device_map)  # checks --device_map before the weights are read
    tokenizer = load_tokenizer(str(path), gguf_file=gguf_file, trust_remote_code=trust_remote_code)
    if not tokenizer.chat_template:
        raise RewardkitError(
            f"--model {path}: the tokenizer has no chat template; a judge needs a chat model"
        )
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    kwargs = dict(dtype=dtype, attn_implementation=attn, trust_remote_code=trust_remote_code)
    kwargs.update(safe_weights(str(path), gguf_file=gguf_file, allow_pickle=allow_pickle))
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    if device_map:
        kwargs["device_map"] = device_map
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if gguf_file:
        forget_gguf_quantizer(model)
    if not device_map:
        model.to(device)
    return model.eval(), tokenizer
