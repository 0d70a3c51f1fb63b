"""`rewardkit score` flow: row layouts, output fields, resume after a crash, bad lines, options."""

import json
from dataclasses import fields

import pytest
import torch

from rewardkit.config import RewardModelArguments, ScoreArguments
from rewardkit.data.tokenize import encode
from rewardkit.errors import RewardkitError
from rewardkit.scorers.base import GroupMixin, Score
from rewardkit.scorers.classifier import ClassifierRM
from rewardkit.scoring import complete_lines, run_score

USER, ANSWER = {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}
ROWS = [
    [USER, ANSWER],  # a bare message array
    {"messages": [USER, {"role": "assistant", "content": "five"}], "id": "b"},
    {"prompt": "Hi", "response": "Hello there"},
    {"prompt": [{"role": "system", "content": "Be brief."}, USER], "response": "4"},
    {"prompt": "2+2?", "chosen": "4", "rejected": "22"},  # TRL pair
    {"chosen": "\n\nHuman: 2+2?\n\nAssistant: 4", "rejected": "\n\nHuman: 2+2?\n\nAssistant: 5!"},  # HH pair
]


def counting_rm(tokenizer, **kw):
    """A toy reward model whose reward is the number of tokens read: every expected score is a length."""
    return ClassifierRM(lambda ids, mask: mask.sum(-1).float(), tokenizer, kind="demo", max_length=512, **kw)


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def args_for(tmp_path, inp, **kw):
    return ScoreArguments(input=str(inp), output=str(tmp_path / "out.jsonl"), **kw)


def n_tokens(tok, messages):
    return len(encode(tok, messages))


def test_every_field_has_help_and_the_command_parses_model_and_score_arguments():
    from rewardkit.cli import parse_dataclasses

    assert all(f.metadata.get("help") for f in fields(ScoreArguments) + fields(RewardModelArguments))
    model_fields = {f.name for f in fields(RewardModelArguments)}
    assert {f.name for f in fields(ScoreArguments)} == {
        "input",
        "output",
        "chunk_size",
        "resume",
        "skip_bad_lines",
        "normalize",
        "calibrated",
    }, "the score command's own options only; the model's are RewardModelArguments"
    argv = [
        "--model",
        "m",
        "--input",
        "in.jsonl",
        "--output",
        "o.jsonl",
        "--resume",
        "--chunk_size",
        "8",
        "--kind",
        "generative",
        "--mode",
        "logprob",
        "--normalize",
        "true",
    ]
    model, args = parse_dataclasses((RewardModelArguments, ScoreArguments), argv, "rewardkit score")
    assert (args.resume, args.chunk_size, model.kind, model.mode, args.normalize) == (
        True,
        8,
        "generative",
        "logprob",
        True,
    )
    assert "template_name" in model_fields


@pytest.mark.parametrize(
    "change, flag",
    [
        ({"input": ""}, "--input"),
        ({"chunk_size": 0}, "--chunk_size"),
        ({"output": "in.jsonl"}, "--output"),
    ],
)
def test_validation_names_the_flag(change, flag):
    kw = {"input": "in.jsonl", "output": "out.jsonl", **change}
    with pytest.raises(RewardkitError, match=flag):
        ScoreArguments(**kw)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model": None}, "--model is required"),
        ({"kind": "magic"}, "--kind magic: accepted values are auto, seq_classifier"),
        ({"max_length": 4}, "--max_length 4: must be at least 8"),
        ({"mode": "vibes"}, "--mode vibes: accepted values are pairwise, pointwise, logprob"),
        ({"batch_tokens": 0}, "--batch_tokens 0"),
        ({"max_new_tokens": 0}, "--max_new_tokens 0"),
        ({"torch_dtype": "float8"}, "--torch_dtype float8"),
        ({"template_name": "nope"}, "--template_name nope: unknown template; accepted: vicuna, alpaca"),
    ],
)
def test_model_arguments_validation_names_the_flag(change, message):
    with pytest.raises(RewardkitError, match=message):
        RewardModelArguments(**{"model": "m", **change})


def test_all_layouts_scored_with_their_fields(tmp_path, char_tokenizer):
    inp = write_jsonl(tmp_path / "in.jsonl", ROWS)
    summary = run_score(counting_rm(char_tokenizer), args_for(tmp_path, inp, chunk_size=4))
    out = read_jsonl(tmp_path / "out.jsonl")
    assert (summary["rows"], summary["conversations"], summary["pairs"], summary["skipped"]) == (6, 4, 2, 0)
    # Counted by hand: <s>, then per message <|role|> + one token per character + </s>.
    # [USER, ANSWER] = 1 + (1 + 4 + 1) + (1 + 1 + 1) = 10
    assert out[0]["messages"] == [USER, ANSWER] and out[0]["score"] == 10
    assert out[0]["num_tokens"] == 10 and out[0]["truncated"] is False
    assert out[1]["id"] == "b" and out[1]["score"] == 13  # the input row's own columns are kept; "five"
    assert out[2]["score"] == 1 + (1 + 2 + 1) + (1 + 11 + 1)  # "Hi" / "Hello there"
    assert out[3]["score"] == 1 + (1 + 9 + 1) + 6 + 3  # "Be brief." system turn
    assert (out[4]["score_chosen"], out[4]["score_rejected"]) == (10, 11)  # "4" / "22"
    assert out[4]["num_tokens_rejected"] == 11 and out[4]["truncated"] is False
    assert (out[5]["score_chosen"], out[5]["score_rejected"]) == (
        10,
        11,
    )  # HH text parsed to turns: "4" / "5!"
    assert out[5]["chosen"] == ROWS[5]["chosen"]
    assert "normalized" not in out[0] and "sub_scores" not in out[0]
    assert not (tmp_path / "out.jsonl.bad.jsonl").exists()


def test_normalized_and_sub_scores(tmp_path, char_tokenizer):
    inp = write_jsonl(tmp_path / "in.jsonl", ROWS[:1] + ROWS[4:5])
    rm = ClassifierRM(
        lambda ids, mask: torch.stack([mask.sum(-1).float(), -mask.sum(-1).float()], -1),
        char_tokenizer,
        kind="demo",
        max_length=512,
        normalization=(10.0, 2.0),
        sub_score_names=["length", "brevity"],
    )
    run_score(rm, args_for(tmp_path, inp, normalize=True))
    conv, pair = read_jsonl(tmp_path / "out.jsonl")
    assert conv["normalized"] == (conv["score"] - 10.0) / 2.0
    assert conv["sub_scores"] == {"length": conv["score"], "brevity": -conv["score"]}
    assert pair["normalized_chosen"] == (pair["score_chosen"] - 10.0) / 2.0 and "sub_scores_rejected" in pair


def test_truncated_flag_when_context_is_trimmed(tmp_path, char_tokenizer):
    long_chat = [
        {"role": "user", "content": "x" * 60},
        {"role": "assistant", "content": "y" * 60},
        USER,
        ANSWER,
    ]
    inp = write_jsonl(tmp_path / "in.jsonl", [long_chat, [USER, ANSWER]])
    rm = counting_rm(char_tokenizer)
    rm.max_length = 100
    run_score(rm, args_for(tmp_path, inp))
    trimmed, short = read_jsonl(tmp_path / "out.jsonl")
    assert trimmed["truncated"] is True and trimmed["num_tokens"] == short["num_tokens"]  # old turns dropped
    assert short["truncated"] is False


def test_refuses_to_overwrite_without_resume(tmp_path, char_tokenizer):
    inp = write_jsonl(tmp_path / "in.jsonl", ROWS)
    (tmp_path / "out.jsonl").write_text('{"score": 1}\n')
    with pytest.raises(RewardkitError, match="--resume") as err:
        run_score(counting_rm(char_tokenizer), args_for(tmp_path, inp))
    assert "\n" not in str(err.value)
    (tmp_path / "out.jsonl").write_text("")  # an empty output is fine to (re)use
    assert run_score(counting_rm(char_tokenizer), args_for(tmp_path, inp))["rows"] == 6


class CrashingRM:
    """Delegates to a real scorer, but dies (like a killed process) on its `crash_at`-th call."""

    def __init__(self, inner, crash_at):
        self.inner, self.calls, self.crash_at, self.kind = inner, 0, crash_at, inner.kind

    def score_detailed(self, conversations):
        self.calls += 1
        if self.calls == self.crash_at:
            raise KeyboardInterrupt
        return self.inner.score_detailed(conversations)


def numbered_rows(n):
    return [
        {
            "messages": [
                {"role": "user", "content": f"q{i}"},
                {"role": "assistant", "content": "a" * (i % 7)},
            ],
            "id": i,
        }
        for i in range(n)
    ]


def test_resume_after_crash_loses_and_duplicates_nothing(tmp_path, char_tokenizer):
    inp = write_jsonl(tmp_path / "in.jsonl", numbered_rows(23))
    with pytest.raises(KeyboardInterrupt):
        run_score(CrashingRM(counting_rm(char_tokenizer), 3), args_for(tmp_path, inp, chunk_size=5))
    assert [r["id"] for r in read_jsonl(tmp_path / "out.jsonl")] == list(range(10))
    with (tmp_path / "out.jsonl").open("a") as f:
        f.write('{"messages": [], "id": 10, "sco')  # a half-written line, as after a kill mid-write
    summary = run_score(counting_rm(char_tokenizer), args_for(tmp_path, inp, chunk_size=5, resume=True))
    out = read_jsonl(tmp_path / "out.jsonl")
    assert [r["id"] for r in out] == list(range(23))
    assert (summary["rows"], summary["resumed_after"]) == (13, 10)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    run_score(counting_rm(char_tokenizer), args_for(fresh, inp))
    assert out == read_jsonl(fresh / "out.jsonl")


def test_resume_of_a_finished_or_missing_output(tmp_path, char_tokenizer):
    inp = write_jsonl(tmp_path / "in.jsonl", numbered_rows(4))
    assert run_score(counting_rm(char_tokenizer), args_for(tmp_path, inp, resume=True))["rows"] == 4
    again = run_score(counting_rm(char_tokenizer), args_for(tmp_path, inp, resume=True))
    assert (again["rows"], again["resumed_after"]) == (0, 4) and len(read_jsonl(tmp_path / "out.jsonl")) == 4


BAD = [
    '{"messages": [{"role": "user", "content": "hi"}], "id": 1}',  # ends with the user
    '{"prompt": "2+2?", "chosen": "4", "rejected": "5", "id": 2}',
    "{not json",
    '{"text": "what is this", "id": 4}',
    '"a bare string"',
    '[{"role": "robot", "content": "beep"}, {"role": "assistant", "content": "x"}]',
    '{"prompt": "p", "response": 3}',
    '{"prompt": "2+2?", "chosen": "4", "rejected": 5}',
    '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "id": 9}',
]


def test_bad_line_stops_with_file_line_and_what_is_accepted(tmp_path, char_tokenizer):
    inp = write_jsonl(tmp_path / "in.jsonl", BAD)
    with pytest.raises(RewardkitError) as err:
        run_score(counting_rm(char_tokenizer), args_for(tmp_path, inp))
    message = str(err.value)
    assert message.startswith(f"{inp}:1: ") and "assistant answer" in message
    assert read_jsonl(tmp_path / "out.jsonl") == []  # the failing chunk wrote nothing


def test_skip_bad_lines_writes_them_aside_in_order(tmp_path, char_tokenizer):
    inp = write_jsonl(tmp_path / "in.jsonl", BAD)
    summary = run_score(
        counting_rm(char_tokenizer), args_for(tmp_path, inp, skip_bad_lines=True, chunk_size=4)
    )
    assert (summary["rows"], summary["skipped"]) == (2, 7)
    assert [r["id"] for r in read_jsonl(tmp_path / "out.jsonl")] == [2, 9]
    bad = read_jsonl(tmp_path / "out.jsonl.bad.jsonl")
    assert [b["line"] for b in bad] == [1, 3, 4, 5, 6, 7, 8]
    assert bad[1]["row"] == "{not json" and "malformed JSON" in bad[1]["error"]
    assert "accepted" in bad[2]["error"] and "its keys: id, text" in bad[2]["error"]
    assert (
        "'role'" in bad[4]["error"]
        and "field 'response'" in bad[5]["error"]
        and "field 'rejected'" in bad[6]["error"]
    )
    assert all(b["error"].startswith(f"{inp}:{b['line']}: ") for b in bad)
    # resuming a finished run with bad rows counts both files: nothing is redone
    again = run_score(counting_rm(char_tokenizer), args_for(tmp_path, inp, skip_bad_lines=True, resume=True))
    assert (again["rows"], again["resumed_after"]) == (0, 9)


def test_complete_lines_cuts_a_partial_last_line(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a"')
    assert complete_lines(path) == 2 and path.read_bytes() == b'{"a": 1}\n{"a": 2}\n'
    path.write_bytes(b"")
    assert complete_lines(path) == 0


class JudgeLike(GroupMixin):
    """A pairwise judge: a pair (group of two) gives P(first wins) and its complement; alone, a rating of 7."""

    kind = "generative"

    def score_detailed(self, conversations):
        return [Score(7.0) for _ in conversations]

    def score_groups(self, groups):
        assert all(len(g.answers) == 2 for g in groups)
        return [[Score(0.75, num_tokens=9), Score(0.25, num_tokens=9)] for _ in groups]


def test_judge_pairs_give_win_probabilities(tmp_path):
    inp = write_jsonl(tmp_path / "in.jsonl", [ROWS[4], ROWS[0]])
    run_score(JudgeLike(), args_for(tmp_path, inp))
    pair, conv = read_jsonl(tmp_path / "out.jsonl")
    assert (pair["score_chosen"], pair["score_rejected"]) == (0.75, 0.25)
    assert (pair["num_tokens_chosen"], pair["num_tokens_rejected"]) == (9, 9)
    assert conv["score"] == 7.0


def test_loads_a_checkpoint_and_uses_prefix_sharing_when_offered(tmp_path, tiny_llama_dir):
    from rewardkit.scorers.load import load_reward_model

    inp = write_jsonl(tmp_path / "in.jsonl", ROWS)
    run_score(
        RewardModelArguments(model=str(tiny_llama_dir)),
        ScoreArguments(input=str(inp), output=str(tmp_path / "a.jsonl")),
    )
    plain = load_reward_model(str(tiny_llama_dir))
    assert plain.prefix_sharing  # what the first run loaded; the reference below turns it off
    plain.prefix_sharing, plain.max_batch_rows = False, 1  # one conversation per forward, no sharing
    run_score(plain, ScoreArguments(input=str(inp), output=str(tmp_path / "b.jsonl")))
    a, b = read_jsonl(tmp_path / "a.jsonl"), read_jsonl(tmp_path / "b.jsonl")
    assert len(a) == len(b) == len(ROWS)
    for x, y in zip(a, b, strict=True):
        for key in ("score", "score_chosen", "score_rejected"):
            if key in x:
                assert y[key] == pytest.approx(x[key], abs=1e-5)
        assert {k: v for k, v in x.items() if not k.startswith("score")} == {
            k: v for k, v in y.items() if not k.startswith("score")
        }


def test_missing_input_fails_before_touching_the_output(tmp_path, char_tokenizer):
    (tmp_path / "out.jsonl").write_text('{"score": 1}\n')
    with pytest.raises(RewardkitError, match="no such file"):
        run_score(counting_rm(char_tokenizer), args_for(tmp_path, tmp_path / "nope.jsonl", resume=True))
    assert (tmp_path / "out.jsonl").read_text() == '{"score": 1}\n'
