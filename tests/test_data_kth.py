"""KTH: the PredRNN/OpenSTL clip protocol, person split, prepare-kth from .avi, bad inputs."""

import numpy as np
import pytest

from swinlstm.cli.main import run
from swinlstm.data import build_datasets
from swinlstm.data.kth import prepare_kth, protocol_starts
from tests.data_writers import ramp_video, write_avi, write_frames, write_kth


def _kth(root, person, action, n_frames, d=1, first=1):
    frames = ramp_video(n_frames, 16, 16, channels=1, seed=person)
    return write_kth(root, person, action, frames, d=d, first=first)


def test_protocol_starts_slow_and_fast_actions():
    numbers = list(range(1, 13))
    assert protocol_starts(numbers, 4, fast=False) == [0, 4, 8]  # non-overlapping from the end
    assert protocol_starts(numbers, 4, fast=True) == [2, 5, 8]  # every 3 frames
    gap = [1, 2, 3, 4, 10, 11, 12, 13]  # a hole in the numbering splits windows
    assert protocol_starts(gap, 4, fast=False) == [0, 4]
    assert protocol_starts(gap, 5, fast=False) == []


def test_person_split_and_shapes(tmp_path):
    _kth(tmp_path, 1, "boxing", 12)
    _kth(tmp_path, 2, "running", 12)
    _kth(tmp_path, 17, "walking", 8)
    s = build_datasets("kth", train_dir=tmp_path, short_len=2, out_len=2, long_len=3, img_size=8)
    assert len(s.train) == 3 + 3  # boxing: 12 // 4; running: starts 8, 5, 2
    assert len(s.test) == 2 and s.valid is s.test
    x, y, long = s.train[0]
    assert x.shape == (2, 1, 8, 8) and y.shape == (2, 1, 8, 8) and long.shape == (3, 1, 8, 8)
    x, y = s.test[0]
    assert float(y.mean()) > float(x.mean())


def test_short_videos_warned_and_empty_is_an_error(tmp_path):
    _kth(tmp_path, 1, "boxing", 12)
    _kth(tmp_path, 3, "boxing", 3)
    _kth(tmp_path, 18, "boxing", 12)
    with pytest.warns(UserWarning, match="skipped 1 KTH videos.*person03_boxing_d1_uncomp"):
        s = build_datasets("kth", train_dir=tmp_path, short_len=2, out_len=2, img_size=16)
    assert len(s.train) == 3
    with (
        pytest.warns(UserWarning),
        pytest.raises(ValueError, match="no KTH clip of short_len \\+ out_len = 40"),
    ):
        build_datasets("kth", train_dir=tmp_path, short_len=10, out_len=30, img_size=16)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no KTH action folders"):
        build_datasets("kth", train_dir=empty)


def test_corrupt_frame_names_the_file(tmp_path):
    folder = _kth(tmp_path, 1, "boxing", 4)
    _kth(tmp_path, 17, "boxing", 4)
    (folder / "image_0002.jpg").write_bytes(b"garbage")
    s = build_datasets("kth", train_dir=tmp_path, short_len=2, out_len=2, img_size=16)
    with pytest.raises(ValueError, match="image_0002.jpg: cannot decode image"):
        s.train[0]


def test_prepare_kth_from_avi_and_cli(tmp_path):
    raw = tmp_path / "raw"
    write_avi(raw / "boxing" / "person01_boxing_d1_uncomp.avi", ramp_video(9, 24, 32))
    write_avi(raw / "running" / "person17_running_d2_uncomp.avi", ramp_video(9, 24, 32))
    (raw / "walking").mkdir()
    (raw / "walking" / "person02_walking_d1_uncomp.avi").write_bytes(b"not a video")
    with pytest.warns(UserWarning, match="skipped 1 KTH videos.*person02_walking_d1_uncomp.avi"):
        assert prepare_kth(raw, tmp_path / "out", size=16) == 2
    frames = sorted((tmp_path / "out" / "boxing" / "person01_boxing_d1_uncomp").iterdir())
    assert [f.name for f in frames[:2]] == ["image_0001.jpg", "image_0002.jpg"] and len(frames) == 9
    s = build_datasets("kth", train_dir=tmp_path / "out", short_len=2, out_len=2, img_size=16)
    assert len(s.train) == 2 and len(s.test) > 0
    frame = s.train[0][0]
    assert frame.shape == (2, 1, 16, 16)

    assert (
        run(
            [
                "data",
                "prepare-kth",
                "--raw",
                str(raw / "boxing"),
                "--out",
                str(tmp_path / "cli"),
                "--size",
                "8",
            ]
        )
        == 0
    )
    assert len(list((tmp_path / "cli" / "boxing" / "person01_boxing_d1_uncomp").iterdir())) == 9


def test_prepare_kth_errors(tmp_path, capsys):
    (tmp_path / "raw").mkdir()
    assert (
        run(["data", "prepare-kth", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "o")])
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no person??_<action>_d?_uncomp.avi videos found" in err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "person01_boxing_d1_uncomp.avi").write_bytes(b"junk")
    with (
        pytest.warns(UserWarning),
        pytest.raises(ValueError, match="none of the 1 videos could be read"),
    ):
        prepare_kth(bad, tmp_path / "o")


def _lmc_video(root, name, n_frames):
    values = (np.arange(n_frames) * 7 % 256).astype(np.uint8)  # frame t has value 7t
    frames = np.broadcast_to(values[:, None, None], (n_frames, 8, 8)).copy()
    write_frames(root / name, frames, "frame_{:05d}.png")


def _starts(ds):
    """The first frame's value / 7 of each item: the window start in its video."""
    return sorted(round(float(item[0][0, 0, 0, 0]) * 255 / 7) for item in ds)


def test_lmc_layout_clips_as_their_dataloader(tmp_path):
    """LMC-Memory's root/<video>/<frames>.png: every window to train, non-overlapping windows to
    test; a video of exactly short_len + out_len frames gives one clip (theirs gives none)."""
    train, test = tmp_path / "train", tmp_path / "test"
    _lmc_video(train, "person01_boxing_d1", 7)  # 5-frame clips: starts 0, 1, 2
    _lmc_video(train, "person02_boxing_d1", 5)  # exactly one clip
    _lmc_video(test, "person17_boxing_d1", 11)  # non-overlapping: starts 0, 5
    _lmc_video(test, "person18_boxing_d1", 5)
    kwargs = dict(short_len=2, out_len=3, long_len=4, img_size=8)
    for clips in (None, "lmc"):  # recognised, or chosen
        options = {} if clips is None else {"clips": clips}
        s = build_datasets("kth", train_dir=train, test_dir=test, **kwargs, **options)
        assert s.info["protocol"] == "LMC-Memory"
        assert len(s.train) == 4 and _starts(s.train) == [0, 0, 1, 2]
        assert len(s.train[0]) == 3  # with the long clip
        assert len(s.test) == 3 and _starts(s.test) == [0, 0, 5]
        assert s.valid is s.test  # no --valid_data_dir: the test set
    s = build_datasets("kth", train_dir=train, valid_dir=test, **kwargs)
    assert len(s.valid) == 3 and s.test is None


def test_lmc_and_predrnn_clip_choice_errors(tmp_path):
    _lmc_video(tmp_path / "lmc", "video_00000", 5)
    _kth(tmp_path / "predrnn", 1, "boxing", 12)
    _kth(tmp_path / "predrnn", 17, "boxing", 12)
    with pytest.raises(ValueError, match="no LMC-Memory video folders"):
        build_datasets("kth", train_dir=tmp_path / "predrnn", short_len=2, out_len=2, clips="lmc")
    with pytest.raises(ValueError, match="no KTH action folders"):
        build_datasets("kth", train_dir=tmp_path / "lmc", short_len=2, out_len=2, clips="predrnn")
    with pytest.raises(ValueError, match="clips='openstl': choose one of predrnn, lmc"):
        build_datasets("kth", train_dir=tmp_path / "lmc", clips="openstl")
    # the action-folder layout is still recognised as PredRNN's
    s = build_datasets("kth", train_dir=tmp_path / "predrnn", short_len=2, out_len=2, img_size=8)
    assert s.info["protocol"] == "PredRNN/OpenSTL"


def test_missing_test_persons_names_the_validation_test_split(tmp_path):
    """Persons 01-16 only: the error says 17-25 are the validation/test split, not just 'no clip'."""
    _kth(tmp_path, 1, "boxing", 12)
    with pytest.raises(ValueError) as err:
        build_datasets("kth", train_dir=tmp_path, short_len=2, out_len=2, img_size=16)
    msg = str(err.value)
    assert "for persons 17-25, the validation/test split" in msg and "01-16 train" in msg
