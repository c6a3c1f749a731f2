"""``swinlstm data {prepare-kth,prepare-taxibj,prepare-human36m,download}``: get benchmark data into the layouts the
loaders read (see docs/datasets.md)."""

from __future__ import annotations

import argparse

from swinlstm.errors import ConfigError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data",
        help="download or prepare datasets",
        description="Download benchmark datasets or convert raw files to the layouts the loaders read.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    kth = actions.add_parser(
        "prepare-kth", help="KTH .avi videos -> grey jpg frames ({action}/{video}/image_xxxx.jpg)"
    )
    kth.add_argument(
        "--raw", required=True, help="folder with the six action folders of .avi files"
    )
    kth.add_argument("--out", required=True, help="output folder")
    kth.add_argument("--size", type=int, default=128, help="frame side in pixels (default 128)")
    kth.set_defaults(func=_prepare_kth)

    taxi = actions.add_parser(
        "prepare-taxibj", help="TaxiBJ BJ*_M32x32_T30_InOut.h5 -> OpenSTL's dataset.npz"
    )
    taxi.add_argument(
        "--raw",
        required=True,
        help="folder with BJ13..BJ16 .h5 (+ BJ_Holiday.txt, BJ_Meteorology.h5)",
    )
    taxi.add_argument("--out", default=None, help="output .npz (default RAW/dataset.npz)")
    taxi.set_defaults(func=_prepare_taxibj)

    h36m = actions.add_parser(
        "prepare-human36m",
        help="H36M image tars' frames -> images/ at 256x256 (OpenSTL's layout for its lists)",
    )
    h36m.add_argument("--raw", required=True, help="folder with the unpacked S*.tar archives")
    h36m.add_argument("--out", required=True, help="output root (gets images/)")
    h36m.add_argument("--size", type=int, default=256, help="frame side in pixels (default 256)")
    h36m.set_defaults(func=_prepare_human36m)

    down = actions.add_parser(
        "download", help="fetch a dataset from its canonical address and unpack it"
    )
    down.add_argument("name", choices=("movingmnist", "kth", "taxibj", "human36m"))
    down.add_argument("--root", required=True, help="folder to put the files in")
    down.set_defaults(func=_download)


def _prepare_kth(args: argparse.Namespace) -> int:
    from swinlstm.data.kth import prepare_kth

    n = prepare_kth(args.raw, args.out, size=args.size)
    print(f"wrote {n} videos to {args.out}")
    return 0


def _prepare_human36m(args: argparse.Namespace) -> int:
    from swinlstm.data.human36m import prepare_human36m

    n = prepare_human36m(args.raw, args.out, size=args.size)
    print(f"wrote {n} frames to {args.out}/images")
    return 0


def _prepare_taxibj(args: argparse.Namespace) -> int:
    from pathlib import Path

    from swinlstm.data.taxibj import prepare_taxibj

    out = args.out or str(Path(args.raw) / "dataset.npz")
    shapes = prepare_taxibj(args.raw, out)
    print(f"wrote {out}: " + ", ".join(f"{k} {tuple(v)}" for k, v in shapes.items()))
    return 0


def _download(args: argparse.Namespace) -> int:
    from swinlstm.data.download import DownloadError, download

    try:
        paths = download(args.name, args.root)
    except DownloadError as err:
        raise ConfigError(str(err)) from None
    for path in paths:
        print(path)
    return 0
