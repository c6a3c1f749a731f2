"""``download(name, root)``: fetch a benchmark's files from their canonical addresses, check, unpack.

Offline (or on any HTTP / network failure) it raises :class:`DownloadError` with one line saying
what could not be reached and which file to fetch by hand and where to put it.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from swinlstm.errors import ConfigError

log = logging.getLogger("swinlstm.data")

_OPENSTL = "https://github.com/chengtan9907/OpenSTL/releases/download/v0.1.0"
# pinned to the last commit that changed the lists (OpenSTL's default branch is no longer master)
_OPENSTL_META = (
    "https://raw.githubusercontent.com/chengtan9907/OpenSTL/"
    "a0f4606afe395a0442d210d352bb263e55805f30/tools/prepare_data/meta/human"
)
_H36M = "http://visiondata.cis.upenn.edu/volumetric/h36m"


@dataclass(frozen=True)
class Remote:
    """One file: saved as ``root/filename``; ``extract`` unpacks a zip / tar into ``root/into``."""

    url: str
    filename: str
    md5: str | None = None
    extract: bool = False
    into: str = "."


SOURCES: dict[str, tuple[Remote, ...]] = {
    "movingmnist": (
        Remote(
            "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
            "train-images-idx3-ubyte.gz",
            md5="f68b3c2dcbeaaa9fbdd348bbdeb94873",
        ),
        Remote(
            "http://www.cs.toronto.edu/~nitish/unsupervised_video/mnist_test_seq.npy",
            "mnist_test_seq.npy",
            md5="be083ec986bfe91a449d63653c411eb2",
        ),
    ),
    # OpenSTL's preprocessed jpg frames: {action}/person01_boxing_d1_uncomp/image_xxxx.jpg
    "kth": (Remote(f"{_OPENSTL}/kth_action.zip", "kth_action.zip", extract=True),),
    "taxibj": (Remote(f"{_OPENSTL}/taxibj_dataset.zip", "taxibj_dataset.zip", extract=True),),
    "human36m": (
        # md5 of the files at that commit (not published; computed from its git blobs)
        Remote(f"{_OPENSTL_META}/train.txt", "train.txt", md5="3cca4454322eb43e730a735069013889"),
        Remote(f"{_OPENSTL_META}/test.txt", "test.txt", md5="69ba47dd751b44e204361e3c103ee6a6"),
        *(
            Remote(f"{_H36M}/{s}.tar", f"{s}.tar", extract=True, into="images_source")
            for s in ("S1", "S5", "S6", "S7", "S8", "S9", "S11")
        ),
    ),
}


def _human36m_images(root: Path) -> None:
    """The unpacked tars -> ``images/`` at 256 x 256 (as OpenSTL's download script), then the
    unpacked copy is removed (the tars stay)."""
    from swinlstm.data.human36m import prepare_human36m

    prepare_human36m(root / "images_source", root, size=256)
    shutil.rmtree(root / "images_source")


#: what runs once every file of a dataset is fetched and unpacked
AFTER = {"human36m": _human36m_images}


class DownloadError(RuntimeError):
    """A file could not be fetched or failed its checksum (one-line message)."""


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, dest: Path, md5: str | None = None, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``dest`` (via ``dest.part``), verifying ``md5`` when given."""
    present = md5sum(dest) if dest.is_file() and md5 is not None else None
    if dest.is_file() and (md5 is None or present == md5):
        log.info("download: %s already present", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except (urllib.error.URLError, OSError, ValueError) as err:
        part.unlink(missing_ok=True)
        reason = getattr(err, "reason", None) or err
        if present is not None:  # the file there is the problem; the network only could not mend it
            raise DownloadError(
                f"{dest}: checksum mismatch (md5 {present}, expected {md5}) and {url} could not "
                f"be reached to fetch it again ({reason}); replace that file by hand"
            ) from None
        raise DownloadError(
            f"could not reach {url} ({reason}); fetch that file by hand and put it at {dest}"
        ) from None
    if md5 is not None and (got := md5sum(part)) != md5:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"{url}: checksum mismatch (md5 {got}, expected {md5}); download discarded, not "
            f"written to {dest}"
        )
    part.replace(dest)
    return dest


def unpack(archive: Path, into: Path) -> None:
    """Extract a zip or tar archive into ``into`` (paths leaving it are refused)."""
    into.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            z.extractall(into)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            if hasattr(tarfile, "data_filter"):
                t.extractall(into, filter="data")
            else:  # Python without extraction filters: refuse members leaving ``into``
                base = into.resolve()
                for member in t.getmembers():
                    if not (into / member.name).resolve().is_relative_to(base):
                        raise DownloadError(f"{archive}: member {member.name!r} would leave {into}")
                t.extractall(into)
    else:
        raise DownloadError(f"{archive}: not a zip or tar archive; delete it and download again")


def download(
    name: str, root: str | Path, urls: dict[str, str] | None = None, timeout: float = 30.0
) -> list[Path]:
    """Fetch dataset ``name`` into ``root``; ``urls`` maps file names to other addresses (mirrors).

    Returns the paths of the downloaded files. Already-present files that pass their checksum are
    not fetched again. Raises DownloadError (one line) on network failure or a bad checksum.
    """
    if name not in SOURCES:
        raise ConfigError(f"no download for dataset {name!r}; choose one of {', '.join(SOURCES)}")
    urls = urls or {}
    unknown = sorted(set(urls) - {r.filename for r in SOURCES[name]})
    if unknown:
        raise ConfigError(f"urls= names files {unknown} that {name} does not have")
    root = Path(root)
    paths = []
    for remote in SOURCES[name]:
        dest = fetch(
            urls.get(remote.filename, remote.url), root / remote.filename, remote.md5, timeout
        )
        if remote.extract:
            unpack(dest, root / remote.into)
        paths.append(dest)
        log.info("download: %s ready", dest)
    if name in AFTER:
        AFTER[name](root)
    return paths
