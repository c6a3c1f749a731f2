"""Every command a user runs on a missing file, a bad flag value or a corrupt file: one line on
stderr naming what is wrong, exit code 2, no traceback."""

from __future__ import annotations

import contextlib

import pytest

from swinlstm.cli.main import run


@pytest.fixture()
def files(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"garbage")  # no PyTorch file at all
    (tmp_path / "bad_json").mkdir()
    (tmp_path / "bad_json" / "metrics.json").write_text("{bad")
    (tmp_path / "bad_mnist").write_bytes(b"\x00\x00\x08\x01" + b"\x00" * 12)  # idx1, not idx3
    (tmp_path / "clip.npy").write_bytes(b"")
    return tmp_path


USAGE_ERRORS = ("--make_frame", "unrecognized arguments", "invalid choice")
CASES = {
    # command: [(argv, what the line must say)] for a missing file, a bad value, a corrupt file
    "test": [
        ("test --checkpoint {t}/nope.ckpt", "checkpoint not found"),
        ("test --checkpoint {t}/bad.pt --make_frame maybe", "--make_frame"),
        ("test --checkpoint {t}/bad.pt", "bad.pt: is truncated or corrupt"),
    ],
    "predict": [
        ("predict --checkpoint {t}/nope.ckpt --input {t}/clip.npy --output {t}/o", "not found"),
        (
            "predict --checkpoint {t}/bad.pt --input {t}/clip.npy --output {t}/o --out_len 0",
            "--out_len",
        ),
        (
            "predict --checkpoint {t}/bad.pt --input {t}/clip.npy --output {t}/o",
            "bad.pt: is truncated",
        ),
    ],
    "export": [
        ("export --checkpoint {t}/nope.ckpt --onnx {t}/m.onnx", "checkpoint not found"),
        ("export --checkpoint {t}/bad.pt --onnx {t}/m.pt", "--onnx must name a .onnx file"),
        ("export --checkpoint {t}/bad.pt --onnx {t}/m.onnx", "bad.pt: is truncated or corrupt"),
    ],
    "zoo": [
        (
            "zoo add {t}/nope --name x --config c --command c --description d",
            "no model.safetensors",
        ),
        (
            "zoo add {t} --name x --config c --command c --description d --test_clips 0",
            "--test_clips",
        ),
        ("zoo fetch nosuch", "no zoo entry 'nosuch'"),
    ],
    "compare": [
        ("compare {t}/nope", "neither a test result folder"),
        ("compare {t}/bad_json --no_such_flag", "unrecognized arguments"),
        ("compare {t}/bad_json", "metrics.json: not valid JSON"),
    ],
    "data": [
        ("data prepare-kth --raw {t}/nope --out {t}/o", "does not exist"),
        ("data download nosuch --root {t}/o", "invalid choice"),
        ("data prepare-kth --raw {t} --out {t}/o", "no person"),
    ],
    "reproduce": [
        ("reproduce cpu --mnist {t}/nope --output {t}/r --results {t}/r.md", "--mnist not found"),
        ("reproduce cpu --jobs 0 --output {t}/r --results {t}/r.md", "--jobs"),
        (
            "reproduce cpu --mnist {t}/bad_mnist --jobs 1 --models convlstm --settings 10-10 "
            "--iterations 1 --output {t}/r --results {t}/r.md",
            "not an idx3 image file",
        ),
    ],
}


@pytest.mark.parametrize("command", sorted(CASES))
def test_user_mistakes_are_one_line_exit_2_without_traceback(files, command, capsys):
    for argv, says in CASES[command]:
        usage = says in USAGE_ERRORS  # argparse's own refusals exit through SystemExit
        with pytest.raises(SystemExit) if usage else contextlib.nullcontext() as exited:
            code = run(argv.format(t=files).split())
        code = exited.value.code if usage else code
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (argv, err)
        assert err.startswith("swinlstm") and says in err, (argv, err)
        if not usage:
            assert err.startswith(f"swinlstm {command}: error: "), (argv, err)
