"""Every `rewardkit ...` command shown in README.md and docs/*.md parses, so the docs cannot rot.

Which lines are commands: in each fenced code block (except python/json/yaml/toml ones), lines are
joined at backslash continuations, then split as the shell would (`shlex`); comments (`# ...`) and
redirections (`> f`, `2>&1`, `< f`) are dropped and the line ends at `|`, `&&`, `||` or `;`. A line
is a rewardkit command when, after any `NAME=value` environment assignments, it starts with
`rewardkit`, or when it runs `-m rewardkit.cli` (the `accelerate launch` / `torchrun` forms); what
follows is its argv. Nothing else is substituted, and a usage synopsis (a word such as
`[--resume]`, `true|false` or `...`) fails: the docs show commands one can paste.

How an argv is checked: the command's own function in `rewardkit.cli.COMMANDS` runs (so new
subcommands are picked up as they are added), with its real pre-parsing: `--config FILE` expanded
from the repository (a missing or malformed file fails), MedicalGPT's legacy flags translated, the
default output folder added. It then builds its `HfArgumentParser` as usual. The one thing replaced,
for the test only (monkeypatch), is the last step of `HfArgumentParser.parse_args_into_dataclasses`
(and of `parse_dict`, should a command read a config file that way): the flags are
parsed by argparse (`parse_known_args`: flag names, value types, `choices`, `--help`), leftover
flags are reported exactly as the real method reports them, and the command stops there, before any
dataclass is built and before anything is loaded or run. One check is stricter than rewardkit itself:
argparse accepts a unique prefix of a flag (`--learning_rat`), which breaks as soon as a flag with the
same prefix is added, so a flag in the docs must be spelled out in full.

Why not build the dataclasses and forgive missing files: their `__post_init__` checks the machine,
not only the command line. `packaged:smollm2` must be installed, `TrainingArguments(bf16=True)` raises
ValueError where there is no GPU, `--deepspeed` initialises DeepSpeed; the docs rightly show
commands for machines the tests do not run on. Catching "missing file" RewardkitErrors would still
fail on the GPU checks, and forgiving more would forgive bad values too. Everything that decides
whether a flag exists and accepts its value happens in argparse, which runs unchanged; the range
checks of `__post_init__` (say `--max_length 4`) are the one thing not applied to the docs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
import shlex
from pathlib import Path

import pytest

from rewardkit import cli
from rewardkit.errors import RewardkitError

NO_OPTIONS = {"env"}  # commands with no options to parse (`rewardkit env` prints versions)
REPO = Path(__file__).resolve().parents[2]
NOT_SHELL = {"python", "py", "pycon", "json", "jsonl", "yaml", "yml", "toml"}
CONTROL = {"|", "||", "&&", ";", "&"}
REDIRECT = re.compile(r"^\d*(>>?|<|>&|&>)(.*)$")  # `>`, `2>`, `>>`, `<`, `2>&1`, `&>`, glued or not
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
MENTIONS_RK = re.compile(r"(^|\s)(\S*/)?rewardkit(\s|$)|-m\s+rewardkit\.cli(\s|$)")  # worth splitting


def doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def fenced_lines(text: str):
    """(line number, line) of every line inside a fenced code block that may hold shell commands."""
    fence, skip = None, False
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if fence is None:
            if stripped.startswith(("```", "~~~")):
                fence = stripped[:3]
                skip = stripped[3:].strip().split(" ")[0].lower() in NOT_SHELL
            continue
        if stripped.startswith(fence) and not stripped[3:].strip():
            fence = None
        elif not skip:
            yield number, line


def joined_lines(text: str):
    """(line number of its first line, text) of each logical line: backslash continuations joined."""
    pending, start = "", 0
    for number, line in fenced_lines(text):
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield start, pending + line
        pending = ""
    if pending:
        yield start, pending


def shell_words(line: str) -> list[str]:
    """The words of one simple command: comments and redirections dropped, cut at a control operator."""
    words = []
    tokens = iter(shlex.split(line, comments=True))
    for token in tokens:
        if token in CONTROL:
            break
        redirect = REDIRECT.match(token)
        if redirect:
            if not redirect.group(2):  # `> file`: the target is the next word
                next(tokens, None)
            continue
        words.append(token)
    return words


def rewardkit_argv(words: list[str]) -> list[str] | None:
    """The argv given to rewardkit (the command first), or None when the line runs something else."""
    while words and ENV_ASSIGNMENT.match(words[0]):
        words = words[1:]
    if words and Path(words[0]).name == "rewardkit":
        return words[1:]
    for i in range(len(words) - 1):
        if words[i] == "-m" and words[i + 1] == "rewardkit.cli":
            return words[i + 2 :]
    return None


def commands_in(text: str) -> list[tuple[int, list[str]]]:
    """(line number, argv) of every rewardkit command in the fenced code blocks of a markdown text."""
    found = []
    for number, line in joined_lines(text):
        if not MENTIONS_RK.search(line):  # diagrams and output in plain blocks need not be shell
            continue
        try:
            argv = rewardkit_argv(shell_words(line.strip().removeprefix("$ ")))
        except ValueError as e:  # unbalanced quotes: reported as the command's problem
            argv = [f"<not a shell line: {e}>"]
        if argv is not None:
            found.append((number, argv))
    return found


class _Parsed(BaseException):
    """Raised where the dataclasses would be built: stops the command. BaseException, so that no
    `except Exception` in a command can swallow it and run on."""

    def __init__(self, problem: str | None):
        super().__init__(problem)
        self.problem = problem


def _parse_only(self, args=None, *unused, **unused_kwargs):
    """Stands in for `HfArgumentParser.parse_args_into_dataclasses`: argparse only, then stop."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            _, remaining = self.parse_known_args(args=args)
    except SystemExit as e:  # argparse: `--help` exits 0, a bad value exits 2 with a message
        lines = err.getvalue().strip().splitlines()
        raise _Parsed(None if e.code == 0 else (lines[-1] if lines else f"exit {e.code}")) from None
    if remaining:
        raise _Parsed(f"Some specified arguments are not used by the HfArgumentParser: {remaining}")
    prefixes = [
        a for a in args or [] if a.startswith("--") and a.split("=")[0] not in self._option_string_actions
    ]
    raise _Parsed(f"abbreviated flags {prefixes}: write them in full" if prefixes else None)


def _parse_dict_only(self, args, allow_extra_keys=False):
    """Stands in for `HfArgumentParser.parse_dict` (and the YAML/JSON file readers built on it), should
    a command parse a config file that way: its key check, then stop, so nothing ever runs."""
    names = {f.name for t in self.dataclass_types for f in dataclasses.fields(t) if f.init}
    unused = sorted(set(args) - names)
    raise _Parsed(
        f"Some keys are not used by the HfArgumentParser: {unused}"
        if unused and not allow_extra_keys
        else None
    )


def synopsis_words(argv: list[str]) -> list[str]:
    """Words of a usage synopsis rather than a command: `[--flag`, `x]`, `a|b`, `...`."""
    return [w for w in argv if w.startswith("[") or w.endswith("]") or "|" in w or w in ("...", "…")]


def parse_problem(argv: list[str], monkeypatch) -> str | None:
    """None when rewardkit would accept `argv`'s flags, else what is wrong with them."""
    from transformers import HfArgumentParser

    if not argv or argv[0] in ("-h", "--help", "help"):
        return None
    if argv[0] not in cli.COMMANDS:
        return f"unknown command '{argv[0]}'; choose from {', '.join(cli.COMMANDS)}"
    if synopsis_words(argv):
        return (
            f"a usage synopsis, not a command ({' '.join(synopsis_words(argv))}): show one concrete command"
        )
    if argv[0] in NO_OPTIONS:  # takes no flags: it must refuse any
        return None if len(argv) == 1 else f"rewardkit {argv[0]} takes no options"
    monkeypatch.chdir(REPO)  # configs/... and other repository paths are relative to the root
    monkeypatch.setattr(HfArgumentParser, "parse_args_into_dataclasses", _parse_only)
    monkeypatch.setattr(HfArgumentParser, "parse_dict", _parse_dict_only)
    try:
        cli.COMMANDS[argv[0]](list(argv[1:]))
    except _Parsed as parsed:
        return parsed.problem
    except RewardkitError as e:  # before parsing: an unreadable --config file, for one
        return str(e)
    return "the command returned without parsing its flags with HfArgumentParser.parse_args_into_dataclasses"


def doc_commands() -> list[pytest.param]:
    params = []
    for path in doc_files():
        for number, argv in commands_in(path.read_text(encoding="utf-8")):
            where = f"{path.relative_to(REPO)}:{number}"
            params.append(pytest.param(where, argv, id=f"{where} {argv[0] if argv else ''}".strip()))
    return params


@pytest.mark.parametrize(("where", "argv"), doc_commands())
def test_every_command_shown_in_the_docs_parses(where, argv, monkeypatch):
    problem = parse_problem(argv, monkeypatch)
    assert problem is None, f"{where}: rewardkit {' '.join(argv)}\n  -> {problem}"


def test_the_docs_show_every_command():
    """Each subcommand of the cli has at least one example that the test above checks."""
    shown = {argv[0] for p in doc_commands() for argv in [p.values[1]] if argv}
    assert set(cli.COMMANDS) - shown == set()


SYNTHETIC_DOC = """\
Some prose that mentions rewardkit train --not_checked here.

```bash
# a comment: rewardkit train --no_such_flag
rewardkit score --model outputs/rm \\
    --input in.jsonl --output out.jsonl   # scores every row
CUDA_VISIBLE_DEVICES=1 rewardkit serve --model m --port 8001 > serve.log 2>&1 &
accelerate launch --num_processes 2 -m rewardkit.cli eval --model m --data a.jsonl | tee log.txt
make demo
```

```python
rewardkit = load_reward_model("rewardkit train --ignored")
```
"""


def test_commands_are_read_as_the_shell_reads_them():
    assert commands_in(SYNTHETIC_DOC) == [
        (5, ["score", "--model", "outputs/rm", "--input", "in.jsonl", "--output", "out.jsonl"]),
        (7, ["serve", "--model", "m", "--port", "8001"]),
        (8, ["eval", "--model", "m", "--data", "a.jsonl"]),
    ]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ("rewardkit score --model m --input a.jsonl --output b.jsonl --made_up_flag 3", "--made_up_flag"),
        ("rewardkit score --model m --input a --output b --kind nope", "invalid choice: 'nope'"),
        ("rewardkit serve --model m --port eighty", "invalid int value: 'eighty'"),
        ("rewardkit train --model_name_or_path m --train_file_dir d --packing sometimes", "invalid choice"),
        ("rewardkit train --model_name_or_path m --train_file_dir d --learnig_rate 1e-4", "--learnig_rate"),
        ("rewardkit train --model_name_or_path m --train_file_dir d --learning_rat 1e-4", "abbreviated"),
        ("rewardkit eval --model m --data a.jsonl [--n_boot 100]", "usage synopsis"),
        ("rewardkit train --model_name_or_path m --use_peft true|false", "usage synopsis"),
        ("rewardkit score --model m --input a --output b ...", "usage synopsis"),
        ("rewardkit train --config configs/no_such_config.yaml", "no such file"),
        ("rewardkit nope --model m", "unknown command 'nope'"),
    ],
)
def test_a_wrong_command_in_a_doc_fails(doc, expected, monkeypatch):
    [(_, argv)] = commands_in(f"```bash\n{doc}\n```\n")
    problem = parse_problem(argv, monkeypatch)
    assert problem is not None and expected in problem


@pytest.mark.parametrize(
    "doc",
    [
        "rewardkit score --model /no/such/model --input /no/such.jsonl --output /tmp/x.jsonl",
        "rewardkit train --model_name_or_path packaged:smollm2 --train_file_dir /no/such/dir --bf16 true",
        "rewardkit train --config configs/train_smollm2_hh_lora.yaml --output-dir /tmp/rk",
        "rewardkit eval --help",
        "rewardkit --help",
    ],
)
def test_paths_that_do_not_exist_here_and_help_are_fine(doc, monkeypatch):
    [(_, argv)] = commands_in(f"```bash\n{doc}\n```\n")
    assert parse_problem(argv, monkeypatch) is None


def test_a_new_command_is_checked_through_cli_commands(monkeypatch):
    """Commands come from `cli.COMMANDS`; one that reads a dict config is stopped too, and one that
    never parses its flags is reported instead of passing."""
    from transformers import HfArgumentParser

    from rewardkit.config import ServeArguments

    def cmd_dict(argv):
        HfArgumentParser((ServeArguments,)).parse_dict({"port": 1, "no_such_key": 2})
        raise AssertionError("ran past its parsing")

    monkeypatch.setitem(cli.COMMANDS, "dictconf", cmd_dict)
    monkeypatch.setitem(cli.COMMANDS, "noparse", lambda argv: 0)
    assert "['no_such_key']" in parse_problem(["dictconf"], monkeypatch)
    assert "without parsing its flags" in parse_problem(["noparse", "--x"], monkeypatch)


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors for the headings of a markdown text (lower case, punctuation dropped)."""
    anchors = set()
    for line in re.sub(r"```.*?```", "", text, flags=re.S).splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_point_at_files_and_headings_that_exist(path):
    text = path.read_text(encoding="utf-8")
    broken = []
    for target in LINK.findall(re.sub(r"```.*?```", "", text, flags=re.S)):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in heading_anchors(dest.read_text("utf-8")):
            broken.append(f"{target}: no such heading")
    assert broken == []
