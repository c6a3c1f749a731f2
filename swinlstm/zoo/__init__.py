"""The model zoo: ``zoo:NAME`` names a trained model, as ``--checkpoint zoo:NAME`` or ``load(NAME)``.

Two kinds of entry:

- **shipped**: weights trained by this project's own code, in the package
  (``swinlstm/zoo/entries/NAME/``: ``model.safetensors``, ``model.json``, ``card.json``,
  ``card.md``). The card records the command that trained it, its data, iterations, wall time and
  machine, its metrics on the built-in Moving MNIST test clips beside the last-frame baseline, and
  its learning curve. :func:`add_entry` makes one from a training folder.
- **published**: an authors' file, fetched on first use from its published address into the cache
  (``~/.cache/swinlstm``, or ``$SWINLSTM_CACHE``), checked where a checksum is known, and built as
  the network it was trained as. Without a network: one line saying what to fetch and where.

    from swinlstm import zoo
    model, info = zoo.load("swinlstm-b-mmnist-small")   # (model in eval mode, info)
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swinlstm.errors import ConfigError
from swinlstm.files import cache_dir

ENTRIES_DIR = Path(__file__).with_name("entries")
PREFIX = "zoo:"
_SWINLSTM_COMMIT = "4425bcfefbebfac85c9fc6c6659361b8154d5ca3"


class ZooError(ConfigError):
    """A zoo name that does not exist, or a published file that cannot be had (one line)."""


@dataclass(frozen=True)
class Published:
    """An authors' file: where it is published, how to check it, which network it is."""

    url: str
    filename: str
    model: str
    config: dict[str, Any]
    source: str
    #: sha1 of the file's git blob (``git hash-object``) where the file lives in a git repository
    git_sha1: str | None = None
    md5: str | None = None


@dataclass(frozen=True)
class Entry:
    """One zoo entry: ``shipped`` (a folder in the package) or ``published`` (an authors' file)."""

    name: str
    description: str
    shipped: Path | None = None
    published: Published | None = None
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "shipped" if self.shipped is not None else "published"


PUBLISHED: dict[str, Entry] = {
    e.name: e
    for e in (
        Entry(
            "swinlstm-d-mmnist-authors",
            "the SwinLSTM authors' SwinLSTM-D, Moving MNIST 10 -> 10 (their Pretrained/ file)",
            published=Published(
                url=(
                    f"https://github.com/SongTang-x/SwinLSTM/raw/{_SWINLSTM_COMMIT}"
                    "/Pretrained/trained_model_state_dict"
                ),
                filename="swinlstm-d-mmnist-authors.pt",
                model="swinlstm-d",
                config={"img_size": 64, "in_chans": 1},
                source="github.com/SongTang-x/SwinLSTM, commit 4425bcf, Pretrained/",
                git_sha1="d02e9c3edf4e3895ddf86555469ba4ba6d0b72d3",
            ),
        ),
        Entry(
            "lmc-memory-mmnist-authors",
            "the LMC-Memory authors' Moving MNIST model (trained_file_movingmnist.pt)",
            published=Published(
                url="https://www.dropbox.com/s/c2yl2f7znzmj8mf/trained_file_movingmnist.pt?dl=1",
                filename="trained_file_movingmnist.pt",
                model="lmc-convlstm",
                config={"img_size": 64, "in_chans": 1, "memory_size": 100},
                source="github.com/sangmin-git/LMC-Memory README (no checksum published)",
            ),
        ),
        Entry(
            "lmc-memory-kth-authors",
            "the LMC-Memory authors' KTH model (trained_file_kth.pt; 128 x 128, final sigmoid)",
            published=Published(
                url="https://www.dropbox.com/s/nt015y70moqgy76/trained_file_kth.pt?dl=1",
                filename="trained_file_kth.pt",
                model="lmc-convlstm",
                config={"img_size": 128, "in_chans": 1, "memory_size": 100, "final_sigmoid": True},
                source="github.com/sangmin-git/LMC-Memory README (no checksum published)",
            ),
        ),
    )
}


def shipped_entries(root: Path | None = None) -> dict[str, Entry]:
    """The entries whose folders are in ``root`` (default: the package's, each with a
    ``card.json``)."""
    out = {}
    for card_path in sorted(Path(root or ENTRIES_DIR).glob("*/card.json")):
        try:
            card = json.loads(card_path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ZooError(f"{card_path}: not a readable zoo card ({err})") from None
        name = card_path.parent.name
        out[name] = Entry(name, card.get("description", ""), shipped=card_path.parent, card=card)
    return out


def entries() -> dict[str, Entry]:
    """Every zoo entry by name: the shipped ones first, then the authors' published files."""
    return {**shipped_entries(), **PUBLISHED}


def entry(name: str) -> Entry:
    """The entry called ``name`` (with or without ``zoo:``), or a one-line ZooError."""
    name = name[len(PREFIX) :] if name.startswith(PREFIX) else name
    known = entries()
    if name not in known:
        raise ZooError(f"no zoo entry {name!r}; `swinlstm zoo` lists them: {', '.join(known)}")
    return known[name]


def best_shipped(short_len: int, out_len: int) -> Entry | None:
    """The shipped entry with the lowest test MSE among those scored on ``short_len -> out_len``
    clips of the built-in test set, or None."""
    fits = [
        e
        for e in shipped_entries().values()
        if (e.card.get("clips", {}).get("short_len"), e.card.get("clips", {}).get("out_len"))
        == (short_len, out_len)
    ]
    return min(fits, key=lambda e: e.card["test"]["mse"], default=None)


def git_sha1(path: Path) -> str:
    """The git blob hash of a file (``git hash-object FILE``)."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def fetch_published(pub: Published, cache: Path | None = None, timeout: float = 30.0) -> Path:
    """The cached file of ``pub``, downloaded and checked first if it is not there yet."""
    from swinlstm.data.download import DownloadError, fetch

    dest = (cache or cache_dir()) / pub.filename
    present = dest.is_file()
    try:
        fetch(pub.url, dest, md5=pub.md5, timeout=timeout)
    except DownloadError as err:
        raise ZooError(str(err)) from None
    if pub.git_sha1 is not None and (got := git_sha1(dest)) != pub.git_sha1:
        if not present:
            dest.unlink()
        raise ZooError(
            f"{dest}: checksum mismatch (git sha1 {got}, expected {pub.git_sha1}); "
            + ("file discarded, download it again" if not present else "delete it and fetch again")
        )
    return dest


def resolve(name: str, cache: Path | None = None) -> tuple[Path, str | None, dict | None]:
    """``(path, model name, config)`` of entry ``name``: a shipped entry's folder (our checkpoint
    format, so no name / config), or the cached authors' file with the network it is built as."""
    e = entry(name)
    if e.shipped is not None:
        return e.shipped, None, None
    pub = e.published
    return fetch_published(pub, cache), pub.model, dict(pub.config)


def load(name: str, cache: Path | None = None):
    """``(model in eval mode, info)`` of zoo entry ``name``; ``info["zoo"]`` is its name.

    The model runs eager even when it was trained compiled: loading is for inference."""
    from swinlstm.engine.checkpoint import load_model

    path, model_name, config = resolve(name, cache)
    model, info = load_model(path, model_name, config, eager=True)
    info["zoo"] = entry(name).name
    return model, info


def load_checkpoint_model(checkpoint: str | os.PathLike, flags_config, **given):
    """:func:`swinlstm.engine.checkpoint.load_checkpoint_model` (what ``test``, ``predict`` and
    ``export`` load), where ``checkpoint`` may also be ``zoo:NAME``: a shipped entry is read as
    the checkpoint folder it is; an authors' file is built as the network its entry names and
    checked against the flags ``given`` (``model``, ``img_size``, ``img_channel``)."""
    from swinlstm.engine.checkpoint import check_flags_fit, load_model
    from swinlstm.engine.checkpoint import load_checkpoint_model as load_file

    if not str(checkpoint).startswith(PREFIX):
        return load_file(checkpoint, flags_config, **given)
    path, name, config = resolve(str(checkpoint))
    if name is None:
        return load_file(path, flags_config, **given)
    built, info = load_model(path, name, config, eager=True)
    fit = {k: given.get(k) for k in ("model", "img_size", "img_channel")}
    check_flags_fit(path, built, info, fit["model"], fit["img_size"], fit["img_channel"])
    return built, {**info, "zoo": entry(str(checkpoint)).name, "checkpoint": str(checkpoint)}


def summary_rows() -> list[dict[str, Any]]:
    """One row per entry for ``swinlstm zoo``: name, kind, model, and the card's figures."""
    rows = []
    for e in entries().values():
        test = e.card.get("test", {})
        rows.append(
            {
                "name": e.name,
                "kind": e.kind,
                "model": e.card.get("model") or (e.published.model if e.published else ""),
                "mse": test.get("mse"),
                "ssim": test.get("ssim"),
                "baseline_mse": test.get("baseline_last_frame_mse"),
                "description": e.description,
            }
        )
    return rows
