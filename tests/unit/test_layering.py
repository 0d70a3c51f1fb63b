"""The layers, read from the imports of every module (ast): commands → train / scorers, score, eval,
serve → core → data. A module may import its own layer and the ones below, never one above; scoring,
eval and serving never need the trainer.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "rewardkit"

# (which modules, what they must never import, why)
RULES = [
    (
        "rewardkit.scorers",
        ("rewardkit.train", "rewardkit.demo", "rewardkit.cli"),
        "scoring never needs the trainer",
    ),
    (
        "rewardkit.serve",
        ("rewardkit.train", "rewardkit.demo", "rewardkit.cli"),
        "serving never needs the trainer",
    ),
    (
        "rewardkit.eval",
        ("rewardkit.train", "rewardkit.demo", "rewardkit.cli"),
        "evaluation never needs the trainer",
    ),
    (
        "rewardkit.inspect",
        ("rewardkit.train", "rewardkit.demo"),
        "inspect shows what training saw through data.tokenize, without the trainer",
    ),
    (
        "rewardkit.scoring",
        ("rewardkit.train", "rewardkit.demo", "rewardkit.cli"),
        "the score command never needs the trainer",
    ),
    (
        "rewardkit.core",
        (
            "rewardkit.train",
            "rewardkit.scorers",
            "rewardkit.eval",
            "rewardkit.serve",
            "rewardkit.scoring",
            "rewardkit.cli",
            "rewardkit.demo",
            "peft",
        ),
        "the core knows no command, no Trainer and no PEFT",
    ),
    (
        "rewardkit.data",
        (
            "rewardkit.core",
            "rewardkit.train",
            "rewardkit.scorers",
            "rewardkit.eval",
            "rewardkit.serve",
            "rewardkit.scoring",
            "rewardkit.cli",
            "rewardkit.demo",
            "torch",
            "transformers",
            "peft",
        ),
        "data knows no model",
    ),
]


def imports_of(path: Path, module: str) -> set[str]:
    """Every module `path` imports, at any depth (imports inside functions count too)."""
    names: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the package
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    return names


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = ["rewardkit", *path.relative_to(SRC).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def violations(rules=RULES) -> list[str]:
    found = []
    for module, path in modules().items():
        for scope, forbidden, why in rules:
            if module != scope and not module.startswith(scope + "."):
                continue
            for name in sorted(imports_of(path, module)):
                if any(name == f or name.startswith(f + ".") for f in forbidden):
                    found.append(f"{path.relative_to(SRC.parent)}: imports {name} ({why})")
    return found


def test_every_layer_imports_only_its_own_and_lower_layers():
    assert violations() == []


def test_the_rules_see_every_package():
    packages = {m.split(".")[1] for m in modules() if m.count(".") >= 1}
    assert {"core", "data", "scorers", "serve", "eval", "train", "demo"} <= packages


@pytest.mark.parametrize(
    ("source", "caught"),
    [
        ("from rewardkit.train.lora import apply_lora\n", True),
        ("def f():\n    import rewardkit.train.trainer\n", True),  # inside a function still counts
        ("from ..train import run\n", True),  # relative
        ("from rewardkit.core.loading import load_tokenizer\n", False),
    ],
)
def test_a_cross_import_would_be_caught(tmp_path, monkeypatch, source, caught):
    """The check itself: a scorer that imports the trainer fails it, wherever the import is."""
    fake = tmp_path / "rewardkit"
    (fake / "scorers").mkdir(parents=True)
    (fake / "scorers" / "bad.py").write_text(source)
    monkeypatch.setattr(__import__(__name__), "SRC", fake)
    assert bool(violations()) is caught
