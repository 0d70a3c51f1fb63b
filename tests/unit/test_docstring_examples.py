"""Every docstring example in src/rewardkit runs and prints what it says (`doctest`).

Modules are found by their `>>>` lines, so a new example is run without being listed here. Examples
that need a trained or large model are marked `# doctest: +SKIP` in place, with the reason beside them.
"""

import doctest
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
MODULES = sorted(
    ".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
    for p in (SRC / "rewardkit").rglob("*.py")
    if ">>>" in p.read_text()
)


def test_modules_with_examples_are_found():
    assert {"rewardkit", "rewardkit.config", "rewardkit.scoring", "rewardkit.scorers.classifier"} <= set(
        MODULES
    )


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_pass(name, capsys):
    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, verbose=False)
    report = capsys.readouterr().out
    assert result.failed == 0, report
    assert result.attempted > 0 or "+SKIP" in Path(module.__file__).read_text()
