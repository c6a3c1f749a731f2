"""Every command the README and docs/ show parses with the flags this version has, and every
preset or file of this repository it names exists: a reader can paste it."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
STARTS = ("swinlstm ", "python train.py", "python test.py", "torchrun ", "srun python ")


def shown_commands() -> list[tuple[str, str]]:
    """(where, command) for each command line in an indented or fenced code block, with its
    backslash continuations joined and its trailing comment dropped."""
    out = []
    for doc in DOCS:
        lines = doc.read_text().splitlines()
        i = 0
        while i < len(lines):
            text = lines[i].strip()
            if lines[i].startswith("    ") and text.startswith(STARTS):
                where = f"{doc.relative_to(ROOT)}:{i + 1}"
                while text.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    text = text[:-1] + " " + lines[i].strip()
                out.append((where, text))
            i += 1
    return out


def _argv(command: str) -> tuple[str, list[str]]:
    """(which parser, its arguments) of a shown command."""
    words = shlex.split(command, comments=True)
    if words[0] == "srun":
        words = words[1:]
    if words[0] == "torchrun":
        words = words[next(i for i, w in enumerate(words) if w.endswith(".py")) :]
        words = ["python", *words]
    if words[0] == "python":
        return words[1], words[2:]
    return "swinlstm", words[1:]


COMMANDS = shown_commands()


def test_the_docs_show_commands():
    assert len(COMMANDS) > 20


@pytest.mark.parametrize("where, command", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_shown_command_parses_and_names_existing_presets(where, command, capsys):
    from swinlstm.cli import test as test_cli
    from swinlstm.cli import train as train_cli
    from swinlstm.cli.main import build_parser

    assert "..." not in command, f"{where}: write the command out in full, not '...'"
    which, argv = _argv(command)
    if which == "test.py":  # as the root test.py builds it
        parser = argparse.ArgumentParser(prog="test.py")
        test_cli.configure(parser)
    else:
        parser = {"train.py": train_cli.standalone_parser, "swinlstm": build_parser}[which]()
    try:
        parser.parse_args(argv)
    except SystemExit as stop:
        assert stop.code == 0, f"{where}: {command}\n{capsys.readouterr().err}"
    for word in argv:
        if re.fullmatch(r"configs/[\w/]+\.yaml", word):
            assert (ROOT / word).is_file(), f"{where}: {word} does not exist"
