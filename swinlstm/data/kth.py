"""KTH Action: grey 160x120 videos of 25 persons doing 6 actions, in the PredRNN/OpenSTL protocol.

Layout read (the preprocessed archive most users download, and what :func:`prepare_kth` writes)::

    root/{boxing,handclapping,handwaving,jogging,running,walking}/person01_boxing_d1_uncomp/image_0001.jpg

Persons 01-16 train, 17-25 test. Clips as PredRNN/OpenSTL: per video, from the end backwards, a
window of short_len + out_len frames whose file numbers are consecutive; the next window ends just
before it for boxing / handclapping / handwaving / walking, and 3 frames earlier for jogging /
running (fast actions: more, overlapping clips).

LMC-Memory's layout is read too (``clips="lmc"``, recognised when the root has no action folder
but folders of frames)::

    root/<video folder>/<frames>.jpg|png

one folder per video, each of ``train_dir`` / ``valid_dir`` / ``test_dir`` a split of its own
(no person split), clips as their ``dataloader.py``: training every window of short_len + out_len
frames (stride 1), validation and test non-overlapping windows from frame 0. A video of exactly
short_len + out_len frames gives one clip (their loader gave none before the fix of their issue #4).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from swinlstm.data.common import (
    VIDEO_EXTS,
    ClipSpec,
    FrameWindows,
    SplitRequest,
    Splits,
    frame_folder_windows,
    list_frame_folders,
    list_images,
    read_video,
    require_path,
    resize_frames,
    warn_skipped,
)
from swinlstm.errors import ConfigError

log = logging.getLogger("swinlstm.data")

ACTIONS = ("boxing", "handclapping", "handwaving", "walking", "jogging", "running")
FAST_ACTIONS = ("jogging", "running")
TRAIN_PERSONS = range(1, 17)
TEST_PERSONS = range(17, 26)
_VIDEO_RE = re.compile(r"person(\d+)_([a-z]+)_d(\d+)")
CLIP_RULES = ("predrnn", "lmc")


def _frame_number(path: Path) -> int:
    digits = re.findall(r"\d+", path.stem)
    return int(digits[-1]) if digits else -1


def protocol_starts(numbers: list[int], seq_len: int, fast: bool) -> list[int]:
    """Window starts (positions in ``numbers``) of the PredRNN/OpenSTL KTH protocol."""
    starts = []
    i = len(numbers) - 1
    while i >= seq_len - 1:
        if numbers[i] - numbers[i - seq_len + 1] == seq_len - 1:
            starts.append(i - seq_len + 1)
            i -= 2 if fast else seq_len - 1
        i -= 1
    return starts[::-1]


def _scan(root: Path, persons: range, spec: ClipSpec) -> tuple[list[list[Path]], np.ndarray]:
    actions = [a for a in ACTIONS if (root / a).is_dir()]
    if not actions:
        raise ConfigError(
            f"{root}: no KTH action folders ({', '.join(ACTIONS)}) and no LMC-Memory video "
            "folders (root/<video>/<frames>.jpg); run `swinlstm data prepare-kth`"
        )
    videos, rows, short = [], [], []
    for action in actions:
        for folder in sorted(p for p in (root / action).iterdir() if p.is_dir()):
            m = _VIDEO_RE.match(folder.name)
            if m is None or int(m.group(1)) not in persons:
                continue
            frames = list_images(folder)
            starts = protocol_starts(
                [_frame_number(f) for f in frames], spec.total, action in FAST_ACTIONS
            )
            if not starts:
                short.append(folder.name)
                continue
            rows.extend((len(videos), s) for s in starts)
            videos.append(frames)
    warn_skipped("KTH videos", short, f"no {spec.total} consecutive frames")
    if not rows:
        role = "training" if persons == TRAIN_PERSONS else "validation/test"
        raise ConfigError(
            f"{root}: no KTH clip of short_len + out_len = {spec.total} frames for persons "
            f"{persons.start:02d}-{persons.stop - 1:02d}, the {role} split of the PredRNN/OpenSTL "
            f"protocol (persons 01-16 train, 17-25 validate/test)"
        )
    return videos, np.asarray(rows, np.int64)


# the frames this dataset gives when not told otherwise (swinlstm.data.native_frame)
IMG_SIZE = 128
IMG_CHANNEL = 1


def build(req: SplitRequest, *, clips: str | None = None) -> Splits:
    """KTH splits. ``clips`` picks the layout and clip rule: ``predrnn`` (the action-folder
    layout: ``train_dir`` gives persons 01-16; the test set is persons 17-25 of ``test_dir``,
    default the same root; validation is ``valid_dir``'s persons 17-25 if given, else the test
    set, as PredRNN and OpenSTL), ``lmc`` (LMC-Memory's video folders, see the module docstring)
    or None: recognised from the first folder given."""
    (train_dir, valid_dir, test_dir), spec = req.dirs, req.spec
    common = req.clip_args
    roots = [require_path(p, "KTH data dir") for p in (train_dir, valid_dir, test_dir) if p]
    rule = clip_rule(roots[0], clips) if roots else (clips or "predrnn")
    if rule == "lmc":
        return _build_lmc(train_dir, valid_dir, test_dir, common)
    info: dict = {"dataset": "kth", "value_range": (0.0, 1.0), "protocol": "PredRNN/OpenSTL"}

    def split(path, persons, train):
        videos, windows = _scan(path, persons, spec)
        return FrameWindows(videos, windows, with_long=train, **common)

    train = test = valid = None
    if train_dir is not None:
        root = require_path(train_dir, "KTH train_dir")
        train = split(root, TRAIN_PERSONS, True)
        info["source"] = str(root)
    test_root = test_dir if test_dir is not None else train_dir
    if test_root is not None:
        test = split(require_path(test_root, "KTH test_dir"), TEST_PERSONS, False)
        info["test"] = f"persons 17-25 of {test_root}"
    if valid_dir is not None:
        valid = split(require_path(valid_dir, "KTH valid_dir"), TEST_PERSONS, False)
        info["valid"] = f"persons 17-25 of {valid_dir}"
    else:
        valid = test
        info["valid"] = "the test set (PredRNN/OpenSTL protocol)"
    return Splits(train, valid, test, info)


def clip_rule(root: Path, clips: str | None) -> str:
    """``predrnn`` or ``lmc``: ``clips`` checked, or recognised from ``root``'s layout."""
    if clips is not None:
        if clips not in CLIP_RULES:
            raise ConfigError(f"KTH clips={clips!r}: choose one of {', '.join(CLIP_RULES)}")
        return clips
    if root.is_dir() and not any((root / a).is_dir() for a in ACTIONS) and list_frame_folders(root):
        return "lmc"
    return "predrnn"


def _build_lmc(train_dir, valid_dir, test_dir, common: dict) -> Splits:
    """LMC-Memory's layout and windows: each dir its own split (valid: the test set if absent)."""
    info: dict = {"dataset": "kth", "value_range": (0.0, 1.0), "protocol": "LMC-Memory"}

    def split(path, what, train):
        root = require_path(path, f"KTH {what}")
        if not list_frame_folders(root):
            raise ConfigError(
                f"{root}: no LMC-Memory video folders (root/<video>/<frames>.jpg) for clips=lmc"
            )
        info[what.split("_")[0]] = f"video folders {root} (LMC-Memory windows)"
        return frame_folder_windows(root, train=train, **common)

    train = split(train_dir, "train_dir", True) if train_dir is not None else None
    test = split(test_dir, "test_dir", False) if test_dir is not None else None
    valid = split(valid_dir, "valid_dir", False) if valid_dir is not None else test
    if train is not None:
        info["source"] = str(train_dir)
    return Splits(train, valid, test, info)


def prepare_kth(raw: str | Path, out: str | Path, size: int = 128, min_frames: int = 2) -> int:
    """Convert KTH's ``person{01..25}_{action}_d{1..4}_uncomp.avi`` videos (the six action folders,
    or all in one folder) to grey ``size`` x ``size`` jpg frames in the layout :func:`build` reads.

    Unreadable or too-short videos (< ``min_frames`` frames) are skipped with one warning naming
    them; finding none is a ValueError. Returns the number of videos written.
    """
    import cv2

    raw = require_path(raw, "prepare-kth --raw")
    out = Path(out)
    files = sorted(
        p for p in raw.rglob("*") if p.suffix.lower() in VIDEO_EXTS and _VIDEO_RE.match(p.name)
    )
    if not files:
        raise ConfigError(f"{raw}: no person??_<action>_d?_uncomp.avi videos found")
    bad, written = [], 0
    for path in files:
        action = _VIDEO_RE.match(path.name).group(2)
        try:
            frames = read_video(path, grey=True)
        except ValueError:
            bad.append(path.name)
            continue
        if len(frames) < min_frames:
            bad.append(path.name)
            continue
        folder = out / action / path.stem
        folder.mkdir(parents=True, exist_ok=True)
        # the loaders' and predict's resize, so prepared frames match what predict feeds a model
        for i, frame in enumerate(resize_frames(frames, (size, size)), start=1):
            cv2.imwrite(str(folder / f"image_{i:04d}.jpg"), frame)
        written += 1
    warn_skipped("KTH videos", bad, f"unreadable or fewer than {min_frames} frames")
    if not written:
        raise ConfigError(f"{raw}: none of the {len(files)} videos could be read")
    log.info("prepare-kth: wrote %d videos to %s", written, out)
    return written
