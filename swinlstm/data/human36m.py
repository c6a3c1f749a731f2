"""Human3.6M in OpenSTL's layout: RGB frames, clips listed in ``train.txt`` / ``test.txt``.

::

    root/train.txt, root/test.txt        lines "images/S1_Directions.54138969_,1276[,1346]"
    root/images/S1_Directions.54138969_001276.jpg      (prefix + 6-digit frame number)
    or root/images/S1_Directions.54138969/001276.jpg   (one folder per video, also accepted)

A line ``prefix,begin`` is the clip of frames begin, begin + step, ... (step 5, as OpenSTL), 4 -> 4,
resized to ``img_size`` (default 128; OpenSTL trains at 256). Frames are RGB (OpenSTL feeds cv2's
BGR order unchanged) and are resized with area / bilinear interpolation (OpenSTL: bicubic).

:func:`prepare_human36m` turns the frames of the original H36M image tars into ``images/`` at 256 x
256, as OpenSTL's ``resize_image.py`` (``swinlstm data prepare-human36m``; the download runs it).
"""

from __future__ import annotations

import logging
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from swinlstm.data.common import (
    ClipDataset,
    SplitRequest,
    Splits,
    read_frames,
    require_path,
    warn_skipped,
)
from swinlstm.errors import ConfigError, MissingPathError

log = logging.getLogger("swinlstm.data")

#: a frame of the H36M image tars, as the lists name them: S1_Directions.54138969_000001.jpg
FRAME_RE = re.compile(r"^S\d+_.+\.\d+_\d{6}\.jpg$")


def parse_list(path: Path) -> list[tuple[str, int]]:
    """``prefix,begin[,end]`` lines -> [(prefix, begin)]; a malformed line is a ValueError."""
    items = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.strip().split(",")
        try:
            items.append((parts[0], int(parts[1])))
        except (IndexError, ValueError):
            raise ConfigError(
                f"{path}:{n}: expected 'prefix,begin', got {line.strip()!r}"
            ) from None
    if not items:
        raise ConfigError(f"{path}: empty clip list")
    return items


class HumanClips(ClipDataset):
    """One clip per list line: frames begin + k * step of the video ``prefix``."""

    def __init__(self, root: Path, items, spec, size, channels, with_long, step: int = 5):
        super().__init__(spec, size, channels, with_long)
        self.root, self.items, self.step = root, items, step
        prefix, begin = items[0]
        self.nested = not self._path(prefix, begin, nested=False).is_file()
        if not self._path(prefix, begin, self.nested).is_file():
            raise MissingPathError(
                f"first frame of the list not found at "
                f"{self._path(prefix, begin, nested=False)} (nor in a folder per video)"
            )

    def __len__(self) -> int:
        return len(self.items)

    def _path(self, prefix: str, number: int, nested: bool) -> Path:
        if nested:
            return self.root / prefix.rstrip("_/") / f"{number:06d}.jpg"
        return self.root / f"{prefix}{number:06d}.jpg"

    def frame_path(self, prefix: str, number: int) -> Path:
        return self._path(prefix, number, self.nested)

    def load_clip(self, index: int) -> object:
        prefix, begin = self.items[index]
        numbers = range(begin, begin + self.spec.total * self.step, self.step)
        return read_frames([self.frame_path(prefix, j) for j in numbers], grey=self.channels == 1)


# the frames this dataset gives when not told otherwise (swinlstm.data.native_frame)
IMG_SIZE = 128
IMG_CHANNEL = 3


def build(req: SplitRequest, *, step: int = 5) -> Splits:
    """Human3.6M splits: ``train_dir`` is the root holding ``train.txt`` (or the list file itself,
    frames relative to its folder); the test set is ``test.txt`` of ``test_dir`` (default: the
    same root); validation is the test set (as OpenSTL) unless ``valid_dir`` is given."""
    train_dir, valid_dir, test_dir = req.dirs
    common = dict(req.clip_args, step=step)
    info: dict = {"dataset": "human36m", "value_range": (0.0, 1.0), "step": step}

    def split(path, list_name, train):
        p = require_path(path, f"Human3.6M {list_name}")
        list_file = p if p.is_file() else p / list_name
        if not list_file.is_file():
            raise MissingPathError(f"Human3.6M: {list_file} does not exist (OpenSTL's {list_name})")
        items = parse_list(list_file)
        try:
            ds = HumanClips(list_file.parent, items, with_long=train, **common)
        except FileNotFoundError as err:
            raise MissingPathError(f"{list_file}: {err}") from None
        return ds, str(list_file)

    train = test = None
    if train_dir is not None:
        train, info["source"] = split(train_dir, "train.txt", True)
    test_root = test_dir
    if test_root is None and train_dir is not None:
        test_root = Path(train_dir).parent if Path(train_dir).is_file() else train_dir
    if test_root is not None:
        test, info["test"] = split(test_root, "test.txt", False)
    valid = test
    info["valid"] = "the test set (as OpenSTL)"
    if valid_dir is not None:
        valid, info["valid"] = split(valid_dir, "test.txt", False)
    return Splits(train, valid, test, info)


def prepare_human36m(raw: str | Path, out: str | Path, size: int = 256, workers: int = 0) -> int:
    """Frames of the H36M image tars unpacked anywhere below ``raw`` (``S1_Directions.54138969_
    000001.jpg``, flat or in folders) -> ``out/images/<name>`` at ``size`` x ``size``, the layout
    OpenSTL's lists name. As OpenSTL's ``resize_image.py``: cv2's default (bilinear) resize, and
    frames no larger than ``size`` are copied. ``workers`` threads (0: one per CPU).

    Unreadable frames are skipped with one warning naming them; finding no frame is a
    ValueError. Returns the number of frames written.
    """
    import os

    import cv2

    raw = require_path(raw, "prepare-human36m --raw")
    if size < 1:
        raise ConfigError(f"prepare-human36m --size must be >= 1, got {size}")
    files = sorted(p for p in raw.rglob("*.jpg") if FRAME_RE.match(p.name))
    if not files:
        raise ConfigError(
            f"{raw}: no H36M frames (S<n>_<Action>.<camera>_<6-digit frame>.jpg) found; "
            "unpack the S*.tar image archives there"
        )
    images = Path(out) / "images"
    images.mkdir(parents=True, exist_ok=True)

    def one(path: Path) -> bool:
        frame = cv2.imread(str(path))
        if frame is None:
            return False
        dest = images / path.name
        if max(frame.shape[:2]) <= size:
            shutil.copyfile(path, dest)
            return True
        return bool(cv2.imwrite(str(dest), cv2.resize(frame, (size, size))))

    with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:  # cv2 releases the GIL
        done = list(pool.map(one, files))
    warn_skipped("H36M frames", [p.name for p, ok in zip(files, done) if not ok], "unreadable")
    written = sum(done)
    if not written:
        raise ConfigError(f"{raw}: none of the {len(files)} frames could be read")
    log.info("prepare-human36m: wrote %d frames to %s", written, images)
    return written
