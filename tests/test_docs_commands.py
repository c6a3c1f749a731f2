"""Every command the README and docs/ show runs as written, on tiny data made here.

Each command runs in-process (``swinlstm.cli.main.run``; the root ``train.py`` / ``test.py``
through their ``main``) in a scratch folder that holds the repository's ``configs/`` and tiny
data at the paths the docs name (``data/mnist/train-images-idx3-ubyte.gz``, ``data/kth``,
``data/taxibj/dataset.npz``, ``data/human``, ...; the README's ``PATH`` placeholders stand for
them too, see :data:`PLACEHOLDERS`). Training and test commands get flags appended (later flags
win) that shrink them to seconds: CPU, 16 px frames (32 px for the zoo's), the smallest network
of each kind, one training iteration on 2 -> 2 frame clips, one test batch (test commands keep
their lengths, so their data must hold such clips). The command's own flags stay as written, so a
renamed or removed flag, a preset that does not exist or a data path the loader refuses fails.
A command that reads a checkpoint (or a zoo entry) first runs the shown command that writes it.
Commands that need the network run without it and must fail with one line
(:data:`NEEDS_NETWORK`); those that cannot run at a small size are only parsed, listed in
:data:`ONLY_PARSED` with the reason.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.data_writers import (
    ramp_video,
    write_avi,
    write_frames,
    write_human36m,
    write_idx,
    write_kth,
    write_taxibj_flows,
    write_taxibj_npz,
)
from tests.run_helpers import QUICK

ROOT = Path(__file__).resolve().parents[1]
# docs/tutorial.md runs in tests/test_tutorial.py, in order, on the stand-in data it describes
OWN_TEST = {"tutorial.md"}
DOCS = [
    ROOT / "README.md",
    *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name not in OWN_TEST),
]
STARTS = ("swinlstm ", "python train.py", "python test.py", "torchrun ", "srun python ")


def shown_commands() -> list[tuple[str, str]]:
    """(where, command) for each command line in an indented or fenced (```) code block, with
    its backslash continuations joined and its trailing comment dropped."""
    out = []
    for doc in DOCS:
        lines = doc.read_text().splitlines()
        fence = None  # the opening line of the fenced block we are in
        i = 0
        while i < len(lines):
            text = lines[i].strip()
            if text.startswith("```"):
                fence = text if fence is None else None
            elif (fence in ("```", "```bash", "```sh") or lines[i].startswith("    ")) and (
                text.startswith(STARTS)
            ):
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


def _expanded(commands: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A ``{a,b}`` choice as one command per choice (``where`` gets ``-a``)."""
    out = []
    for where, command in commands:
        choice = re.search(r"\{([\w,-]+)\}", command)
        if choice is None:
            out.append((where, command))
            continue
        for name in choice.group(1).split(","):
            out.append((f"{where}-{name}", command.replace(choice.group(0), name)))
    return out


COMMANDS = _expanded(shown_commands())

# commands that cannot run at a small size: what in them, and why they are only parsed
ONLY_PARSED = {
    "--devices 4": "several GPUs (DDP); tests/test_train_ddp.py runs DDP on CPU processes",
    "--num_nodes 2": "several machines (torchrun / SLURM)",
    "reproduce cpu": "the whole CPU reproduction (hours); tests/test_reproduce.py runs it tiny",
    "bench metrics": "a benchmark (minutes of timing); tests/test_bench.py runs it tiny",
    "bench data": "a benchmark (minutes of timing); tests/test_bench.py runs it tiny",
}
# commands that need the network: run with it cut off, they must fail with one line
NEEDS_NETWORK = ("data download",)

# what the docs' placeholders stand for: a word of capitals (in any word), the README's ``PATH``
# by the flag before it
WORDS = {"KTH_AVI_DIR": "raw/kth", "TAXIBJ_DIR": "raw/taxibj", "DIR": "downloads"}
PLACEHOLDERS = {
    "--train_data_dir": "data/mnist/train-images-idx3-ubyte.gz",
    "--valid_data_dir": "data/mnist/frames",  # LMC-Memory's frame folders: 40-frame clips
    "--test_data_dir": "data/mnist/frames",
    "--test_result_dir": "results/readme",
    "--checkpoint_load_file": "checkpoints/best.ckpt",
}

SIZE = 16  # frames of every run: 14 px digits (the zoo's runs: 32, the preset's 28 px digits fit)
ZOO_SIZE = 32
TINY = {  # flags that make each network tiny (LMC-Memory's has no size flags: as it is)
    "swinlstm-d": "--patch_size 4 --embed_dim 8 --depths_down 1 1 --depths_up 1 1 "
    "--heads_number 1 1 --window_size 2",
    "swinlstm-b": "--patch_size 4 --embed_dim 8 --depths 1 --heads_number 1 --window_size 2",
    "convlstm": "--patch_size 4 --num_hidden 4 --filter_size 3",
    "lmc-convlstm": "",
}
TRAIN_QUICK = [*QUICK, "--iterations", "1", "--devices", "1", "--precision", "32-true"]
TEST_QUICK = ["--batch_size", "1", "--max_batches", "1", "--device", "cpu", "--workers", "0"]
ZOO_ADD_QUICK = ["--test_clips", "2"]  # `zoo add` scores the entry on 2 built-in clips
# the SwinLSTM authors' names of appended flags, used where a command has theirs (both differing
# is an error), with one training clip so that an epoch is one iteration
THEIRS = {
    "--batch_size": "--train_batch_size",
    "--iterations": "--epochs",
    "--print_freq": "--epoch_valid",
}
THEIR_CLIPS = ["--train_samples", "0", "1", "--valid_samples", "1", "2"]


def _flag(argv: list[str], name: str) -> str | None:
    """The value of the last ``name`` in ``argv`` (None if absent)."""
    values = [argv[i + 1] for i, w in enumerate(argv[:-1]) if w == name]
    return values[-1] if values else None


def _preset(argv: list[str]) -> dict:
    config = _flag(argv, "--config")
    return yaml.safe_load((ROOT / config).read_text()) if config else {}


def _model(argv: list[str]) -> str:
    """The base network a training or test command builds: its --model, else its preset's (a
    named variant such as swinlstm-d-mmnist: its base model)."""
    from swinlstm.models import VARIANTS

    name = (_flag(argv, "--model") or _preset(argv).get("model") or "swinlstm-d").lower()
    return VARIANTS[name].base if name in VARIANTS else name


def _memory(argv: list[str]) -> bool:
    return int(_flag(argv, "--memory_size") or _preset(argv).get("memory_size") or 0) > 0


def _long(argv: list[str]) -> bool:
    return int(_flag(argv, "--long_len") or _preset(argv).get("long_len") or 0) > 0


def _shrunk(which: str, argv: list[str]) -> list[str]:
    """``argv`` with the placeholders filled in and the seconds-long flags appended."""
    argv = [PLACEHOLDERS[argv[i - 1]] if w == "PATH" else w for i, w in enumerate(argv)]
    argv = [re.sub(r"\b[A-Z][A-Z_]*\b", lambda m: WORDS.get(m[0], m[0]), w) for w in argv]
    argv = [w.strip("[]") for w in argv]  # an optional part, given
    sub = argv[0] if which == "swinlstm" else which.removesuffix(".py")
    if which == "swinlstm" and argv[:2] == ["zoo", "add"]:
        return [*argv, *ZOO_ADD_QUICK]
    if sub not in ("train", "test"):
        return argv
    tiny = TINY[_model(argv)].split() + (["--memory_size", "4"] if _memory(argv) else [])
    quick = [*TEST_QUICK]  # test commands keep their lengths: their data must hold such clips
    if sub == "train":  # 2 -> 2 frames (memory: a 2-frame long clip), far quicker than 10 -> 30
        quick = [*TRAIN_QUICK, "--short_len", "2", "--out_len", "2"]
        quick += ["--long_len", "2"] if _long(argv) else []
    if sub == "train" and _flag(argv, "--checkpoint_load_file"):  # resume: one more iteration
        quick = [*quick, "--iterations", "2"]
    if any(theirs in argv for theirs in THEIRS.values()):
        quick = [THEIRS.get(w, w) for w in quick] + THEIR_CLIPS
    if any("zoo" in w for w in argv):
        return [*argv, "--img_size", str(ZOO_SIZE), *tiny, *quick]
    if (_flag(argv, "--dataset") or _preset(argv).get("dataset", "movingmnist")) == "movingmnist":
        quick += ["--data_options", "digit_size=14"]  # digits that fit 16 px frames
    return [*argv, "--img_size", str(SIZE), *tiny, *quick]


def _run(which: str, argv: list[str]) -> int:
    """Exit code of the shown command, run in this process."""
    from swinlstm.cli import test as test_cli
    from swinlstm.cli import train as train_cli
    from swinlstm.cli.main import run

    if which == "swinlstm":
        return run(argv)
    main = {"train.py": train_cli.main, "test.py": test_cli.main}[which]
    try:
        return int(main(argv) or 0)
    except SystemExit as stop:
        return int(stop.code or 0)


def _write_tiny_data(root: Path) -> None:
    """Tiny data at every data path the docs name, in each dataset's real on-disk format."""
    rng = np.random.default_rng(0)
    digits = (rng.random((40, 28, 28)) > 0.7) * 255
    for folder in (root / "data", root / "data" / "mnist"):
        folder.mkdir(parents=True, exist_ok=True)
        write_idx(folder / "train-images-idx3-ubyte.gz", digits)
        # mnist_test_seq.npy: (20 frames, N clips, H, W) uint8, as the real file
        np.save(folder / "mnist_test_seq.npy", (rng.random((20, 2, 32, 32)) * 255).astype(np.uint8))
    for i in range(2):  # LMC-Memory's layout of Moving MNIST: video_xxxxx/frame_xxxxx.png
        frames = ramp_video(40, 32, 32, channels=1, seed=i)
        write_frames(root / "data" / "mnist" / "frames" / f"video_{i:05d}", frames)
    for person, action in ((1, "boxing"), (17, "walking")):  # KTH: 50 frames per video
        write_kth(root / "data" / "kth", person, action, ramp_video(50, 24, 32, 1, seed=person))
    (root / "data" / "taxibj").mkdir(parents=True)
    write_taxibj_npz(root / "data" / "taxibj" / "dataset.npz", n=2)
    (root / "data" / "human").mkdir(parents=True)
    write_human36m(root / "data" / "human", size=32)
    write_avi(root / "clip.avi", ramp_video(12, 32, 32))
    for person, action in ((1, "boxing"), (17, "running")):  # the original KTH videos
        video = root / "raw" / "kth" / action / f"person{person:02d}_{action}_d1_uncomp.avi"
        write_avi(video, ramp_video(50, 24, 32))
    (root / "raw" / "taxibj").mkdir(parents=True)  # the original TaxiBJ files
    write_taxibj_flows(
        root / "raw" / "taxibj" / "BJ14_M32x32_T30_InOut.h5", dt.date(2014, 3, 1), 30
    )


class Workspace:
    """The scratch folder the commands run in, and the runs that write checkpoints on demand."""

    def __init__(self, root: Path):
        self.root = root
        (root / "configs").symlink_to(ROOT / "configs")
        _write_tiny_data(root)
        self.done: set[str] = set()

    def provide(self, path: str, capsys) -> None:
        """Run the shown training command whose output ``path`` is (once), unless it exists."""
        target = Path(path)
        if (self.root / target).exists():
            return
        if target.parts[:2] == ("runs", "demo"):  # written by `swinlstm demo`: a tiny run here
            if not (self.root / "runs" / "demo" / "checkpoints").exists():
                argv = ["--dataset", "movingmnist", "--model", "convlstm", "--short_len", "2"]
                argv += ["--out_len", "3", "--checkpoint_save_dir", "runs/demo/checkpoints"]
                assert _run("swinlstm", _shrunk("swinlstm", ["train", *argv])) == 0
            clip = ramp_video(4, SIZE, SIZE, channels=1)
            np.save(self.root / "runs" / "demo" / "input_clip.npy", clip)
            return
        for where, command in COMMANDS:
            which, argv = _argv(command)
            writes = _flag(argv, "--checkpoint_save_dir")
            if argv[:2] == ["zoo", "add"]:
                writes = f"zoo/{_flag(argv, '--name')}"
            if writes and where not in self.done and Path(writes) in (target, *target.parents):
                self.done.add(where)
                run_shown(self, which, argv, capsys, where)
                return


def run_shown(space: Workspace, which: str, argv: list[str], capsys, where: str) -> None:
    """Run one shown command (its inputs provided first) and assert it succeeds."""
    argv = _shrunk(which, argv)
    for name in ("--checkpoint_load_file", "--checkpoint", "--input"):
        value = _flag(argv, name)
        if value and not value.startswith("zoo:"):
            space.provide(value, capsys)
    for word in argv:
        if word.startswith("zoo:"):  # an entry that a shown `zoo add` makes
            space.provide(f"zoo/{word[4:]}", capsys)
    if argv[:2] == ["zoo", "add"]:
        space.provide(argv[2], capsys)
    capsys.readouterr()
    code = _run(which, argv)
    err = capsys.readouterr().err
    assert code == 0, f"{where}: exit {code}: {' '.join(argv)}\n{err[-3000:]}"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The scratch folder, with torch on one thread: the tiny runs take a third of the CPU time
    they take on all threads of a shared machine (measured: 4.7 s against 12.5 s for README's
    first command)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield Workspace(tmp_path_factory.mktemp("docs"))
    torch.set_num_threads(threads)


@pytest.fixture
def in_workspace(workspace, monkeypatch, offline):
    """Commands run in the workspace, without the network; outputs outside it (``/tmp/probe``)
    and the zoo's entries and cache are redirected into it."""
    from swinlstm import zoo

    monkeypatch.chdir(workspace.root)
    monkeypatch.setattr(zoo, "ENTRIES_DIR", workspace.root / "zoo")
    monkeypatch.setenv("SWINLSTM_CACHE", str(workspace.root / "cache"))
    return workspace


def test_the_docs_show_commands():
    assert len(COMMANDS) > 20


def _parse(where: str, which: str, argv: list[str], capsys) -> None:
    from swinlstm.cli import test as test_cli
    from swinlstm.cli import train as train_cli
    from swinlstm.cli.main import build_parser

    if which == "test.py":  # as the root test.py builds it
        parser = argparse.ArgumentParser(prog="test.py")
        test_cli.configure(parser)
    else:
        parser = {"train.py": train_cli.standalone_parser, "swinlstm": build_parser}[which]()
    try:
        parser.parse_args(argv)
    except SystemExit as stop:
        assert stop.code == 0, f"{where}: {' '.join(argv)}\n{capsys.readouterr().err}"


@pytest.mark.parametrize("where, command", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_shown_command_runs(where, command, in_workspace, capsys):
    assert "..." not in command, f"{where}: write the command out in full, not '...'"
    which, argv = _argv(command)
    for word in argv:
        if re.fullmatch(r"configs/[\w/]+\.yaml", word):
            assert (ROOT / word).is_file(), f"{where}: {word} does not exist"
    reason = next((why for what, why in ONLY_PARSED.items() if what in command), None)
    if reason is not None or command.startswith(("torchrun ", "srun ")):
        _parse(where, which, argv, capsys)
        return
    argv = [str(in_workspace.root / w.lstrip("/")) if w.startswith("/tmp/") else w for w in argv]
    if any(what in command for what in NEEDS_NETWORK):
        capsys.readouterr()
        code = _run(which, _shrunk(which, argv))
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(lines) == 1, f"{where}: exit {code}, not one line: {lines}"
        return
    run_shown(in_workspace, which, argv, capsys, where)
