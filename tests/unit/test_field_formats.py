"""The field's own preference files read into the normal form: LLaMA-Factory's real demo files and
dataset_info.json, and small fixtures written from the MedicalGPT, TRL and Alpaca documentation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewardkit.data.dataset_info import resolve
from rewardkit.data.formats import detect_format, split_text_prompt
from rewardkit.data.loading import load_eval_items, load_pairs
from rewardkit.data.rows import parse_score_row
from rewardkit.errors import DataError, RewardkitError

ROOT = Path(__file__).resolve().parents[2]
FIELD = ROOT.parent / "shared" / "data" / "field-formats"
FIX = ROOT / "tests" / "fixtures" / "field"


def test_medicalgpt_sharegpt_rows_with_plain_string_answers():
    pairs, report = load_pairs(FIX / "medicalgpt_reward.jsonl")
    assert report.kept == 2 and detect_format(json.loads((FIX / "medicalgpt_reward.jsonl").open().readline()))
    first, second = pairs
    assert first.system == "You are a helpful medical assistant."
    assert first.prompt == [{"role": "user", "content": "What should I do about a mild fever?"}]
    assert first.chosen.startswith("Rest, drink fluids") and first.rejected == "Ignore it."
    assert [m["role"] for m in second.prompt] == ["user", "assistant", "user"]
    assert first.tools is None and second.tools[0]["function"]["name"] == "lookup_drug"  # a JSON string


def test_trl_implicit_prompt_strings_split_at_a_word_boundary():
    pairs, _ = load_pairs(FIX / "trl_implicit_text.jsonl")
    explicit, _ = load_pairs(FIX / "trl_explicit_text.jsonl")
    assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [
        (p.prompt, p.chosen, p.rejected) for p in explicit
    ]
    assert pairs[0].prompt[0]["content"] == "The sky is" and pairs[0].chosen == " blue."
    # TRL's extract_prompt would cut "Four"/"Five" after "F"; here no word is split, and no prompt is an error
    with pytest.raises(DataError, match="share no beginning"):
        split_text_prompt("Four", "Five", "f.jsonl:1")
    assert split_text_prompt("It is", "It is not", "")[1:] == (" is", " is not")


def test_alpaca_ranking_rows():
    pairs, _ = load_pairs(FIX / "alpaca_ranking.jsonl")
    assert pairs[0].system == "You are a translator."
    assert pairs[0].prompt == [{"role": "user", "content": "Translate to French.\nGood morning"}]
    assert (pairs[0].chosen, pairs[0].rejected) == ("Bonjour", "Bonsoir")
    assert pairs[1].prompt == [
        {"role": "user", "content": "Translate to French: thank you"},
        {"role": "assistant", "content": "Merci"},
        {"role": "user", "content": "And this one?"},
    ]


def test_content_parts_are_read_wherever_messages_are():
    pairs, _ = load_pairs(FIX / "content_parts.jsonl")
    assert pairs[0].prompt[0]["content"] == "What is 2+2? \nBe brief." and pairs[0].chosen == "4"
    conv = [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": "yo"},
    ]
    assert parse_score_row("x.jsonl", 1, json.dumps(conv).encode()).messages[0]["content"] == "hi"
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
    err = parse_score_row("x.jsonl", 4, json.dumps(image + conv[1:]).encode())
    assert isinstance(err, DataError) and str(err).startswith(
        "x.jsonl:4: field 'messages[0]': content part 0"
    )


def test_llamafactory_demo_files_load_in_train_and_eval():
    pairs, report = load_pairs(FIELD / "llamafactory_dpo_en_demo.first100.json")
    assert report.kept == 100 and pairs[0].prompt[0]["content"].startswith("Hi! I'd like to create")
    v1, report = load_pairs(FIELD / "llamafactory_v1_dpo_demo.jsonl")
    first = json.loads((FIELD / "llamafactory_v1_dpo_demo.jsonl").open().readline())
    assert report.total == len(v1) + report.dropped and v1
    assert v1[0].system == first["chosen_messages"][0]["content"][0]["value"]
    assert v1[0].chosen == first["chosen_messages"][-1]["content"][0]["value"]
    assert v1[0].rejected == first["rejected_messages"][-1]["content"][0]["value"]
    items, _ = load_eval_items(FIELD / "llamafactory_v1_dpo_demo.jsonl")
    assert [i.chosen[0] for i in items] == [p.chosen for p in v1]


def test_dataset_info_column_mapping():
    info = FIELD / "llamafactory_dataset_info.json"
    (demo,) = resolve(str(info), "dpo_en_demo")
    pairs, _ = load_pairs(demo.path, columns=demo.columns)
    assert len(pairs) == 100 and demo.path == str(FIELD / "llamafactory_dpo_en_demo.first100.json")
    (orca,) = resolve(str(info), "orca_pairs")  # alpaca formatting, prompt column "question"
    assert orca.path == "Intel/orca_dpo_pairs" and orca.columns["question"] == "instruction"
    with pytest.raises(RewardkitError, match="--dataset nope: not in .*it has: dpo_en_demo, ultrafeedback"):
        resolve(str(info), "nope")


def test_dataset_info_renames_alpaca_columns(tmp_path):
    rows = [{"question": "2+2?", "sys": "Be exact.", "chosen": "4", "rejected": "5"}]
    (tmp_path / "orca.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    entry = {"file_name": "orca.jsonl", "ranking": True, "columns": {"prompt": "question", "system": "sys"}}
    (tmp_path / "dataset_info.json").write_text(
        json.dumps({"orca": entry, "sft": {"file_name": "orca.jsonl"}})
    )
    (spec,) = resolve(str(tmp_path / "dataset_info.json"), "orca")
    (pair,), _ = load_pairs(spec.path, columns=spec.columns)
    assert (pair.system, pair.prompt[0]["content"], pair.chosen) == ("Be exact.", "2+2?", "4")
    with pytest.raises(RewardkitError, match="entry 'sft' is not preference data"):
        resolve(str(tmp_path / "dataset_info.json"), "sft")


def test_bad_utf8_is_reported_on_its_own_line():
    with pytest.raises(DataError) as err:
        load_pairs(FIX / "bad_utf8_line2.jsonl")
    assert str(err.value).startswith(f"{FIX / 'bad_utf8_line2.jsonl'}:2: not UTF-8 text")


CALL = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}


def test_tool_calling_rows():
    (call_pair, result_pair), report = load_pairs(FIX / "trl_tools.jsonl")
    assert report.dropped == 0  # an answer that only calls a tool is an answer, not an empty one
    assert call_pair.tools == result_pair.tools and call_pair.tools[0]["function"]["name"] == "get_weather"
    assert (call_pair.chosen, call_pair.chosen_tool_calls) == ("", [CALL])
    assert call_pair.chosen_answer() == {"role": "assistant", "content": "", "tool_calls": [CALL]}
    assert call_pair.rejected_answer() == {"role": "assistant", "content": "It is sunny in Paris."}
    assert [m["role"] for m in result_pair.prompt] == ["user", "assistant", "tool"]
    assert call_pair.prompt_messages()[0]["tools"] == call_pair.tools  # carried to the chat template
    (sharegpt,), _ = load_pairs(FIX / "sharegpt_tools.jsonl")  # function_call / observation turns
    assert sharegpt.prompt == result_pair.prompt[:1] + [
        {"role": "assistant", "content": "", "tool_calls": [CALL]},
        {"role": "tool", "content": result_pair.prompt[2]["content"]},
    ]
    assert sharegpt.tools == result_pair.tools and sharegpt.chosen == result_pair.chosen
    (item, _), _ = load_eval_items(FIX / "trl_tools.jsonl")
    assert item.chosen == [call_pair.chosen_answer()] and item.rejected == [call_pair.rejected]


def test_bad_tools_column_is_one_line():
    row = {"prompt": "q", "chosen": "a", "rejected": "b", "tools": "[{not json"}
    err = parse_score_row("t.jsonl", 3, json.dumps(row).encode())
    assert isinstance(err, DataError) and str(err).startswith("t.jsonl:3: field 'tools': not valid JSON")


def test_eval_reads_dataset_info_entries(tmp_path, monkeypatch):
    from rewardkit.cli import main

    scorer = tmp_path / "length_rm.py"
    scorer.write_text(
        "def score(conversations):\n    return [float(len(c[-1]['content'])) for c in conversations]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    info = str(FIELD / "llamafactory_dataset_info.json")
    argv = ["eval", "--model", "length_rm:score", "--dataset_info", info, "--dataset", "dpo_en_demo"]
    assert main([*argv, "--output_dir", str(tmp_path / "ev"), "--n_boot", "0"]) == 0
    results = json.loads((tmp_path / "ev" / "results.json").read_text())
    (demo,) = resolve(info, "dpo_en_demo")
    pairs, _ = load_pairs(demo.path, columns=demo.columns)
    longer = sum(len(p.chosen) > len(p.rejected) for p in pairs) / len(pairs)
    assert results["summary"]["n_items"] == 100 and results["summary"]["accuracy"]["value"] == pytest.approx(
        longer
    )
    assert set(results["summary"]["subsets"]) == {"dpo_en_demo"}  # reported under the entry's name
    assert main(["eval", "--model", "length_rm:score", "--dataset_info", info]) == 2  # needs --dataset
