"""OpenRLHF's remote-RM client text against the Python API, on SmolLM2-135M-Instruct (ChatML).

The client sends prompt + generated tokens decoded with special tokens, ending at EOS
("...4<|im_end|>"); the chat template ends the turn with "<|im_end|>\\n". Prints the rewards of the
same three conversations through the Python API, through the client's text read as it is (what
/get_reward did before the turn-ending rule, docs/formats.md), and through /get_reward now.
The score head is random (seeded), so the figures check routing, not quality. Writes
bench/results/openrlhf_parity.json and .md.

    python bench/openrlhf_parity.py
"""

import json
from pathlib import Path

import torch
from fastapi.testclient import TestClient

from rewardkit.assets import resolve_packaged
from rewardkit.scorers.load import load_reward_model
from rewardkit.serve.app import create_app

ANSWERS = ("4", "It is 5.", "Four.")


def main() -> None:
    torch.manual_seed(0)
    folder, gguf = resolve_packaged("packaged:smollm2", None)
    rm = load_reward_model(folder, kind="seq_classifier", gguf_file=gguf)
    tok = rm.tokenizer
    convs = [
        [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": a}] for a in ANSWERS
    ]
    queries = []
    for conv in convs:  # openrlhf: decode(prompt ids + generated ids + [eos], skip_special_tokens=False)
        prompt = tok.apply_chat_template(conv[:-1], tokenize=False, add_generation_prompt=True)
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        ids += tok(conv[-1]["content"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        queries.append(tok.decode(ids, skip_special_tokens=False))
    api = rm.score(convs)
    as_is = [tok(q, add_special_tokens=False)["input_ids"] for q in queries]
    before = [s.score for s in rm.score_encoded(as_is, [False] * len(as_is))]
    with TestClient(create_app(rm)) as client:
        body = {"query": queries, "prompts": ["What is 2+2?"] * 3, "labels": [""] * 3}
        after = client.post("/get_reward", json=body).json()["rewards"]
    rows = (("Python API (messages)", api), ("client text read as is", before), ("/get_reward", after))
    table = ["| route | " + " | ".join(ANSWERS) + " |", "|---|---:|---:|---:|"]
    table += [f"| {name} | " + " | ".join(f"{v:.4f}" for v in values) + " |" for name, values in rows]
    table.append(f"\nmax abs(/get_reward - API) = {max(abs(a - b) for a, b in zip(after, api)):.2e}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "openrlhf_parity.json").write_text(json.dumps({"answers": ANSWERS, **dict(rows)}, indent=2))
    (out / "openrlhf_parity.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
