"""``swinlstm zoo``: list the model zoo, fetch an authors' file, add a trained run as an entry.

    swinlstm zoo                      # the entries with their card figures
    swinlstm zoo fetch NAME           # download a published entry into the cache now
    swinlstm zoo add RUN_DIR --name NAME --config PRESET --command "..." --description "..."
    swinlstm zoo add RUN_DIR ... --after NAME  # RUN_DIR fine-tuned NAME's weights: a second stage

Any command that takes ``--checkpoint`` takes ``zoo:NAME``.
"""

from __future__ import annotations

import argparse

from swinlstm.errors import ConfigError

HELP = "list the model zoo (zoo:NAME for --checkpoint), fetch or add entries"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("zoo", help=HELP, description=HELP)
    p.set_defaults(func=_list)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    ls = actions.add_parser("list", help="the entries with their card figures (the default)")
    ls.set_defaults(func=_list)
    fetch = actions.add_parser("fetch", help="download a published entry into the cache")
    fetch.add_argument("name")
    fetch.set_defaults(func=_fetch)
    add = actions.add_parser("add", help="make a shipped entry (weights + card) from a run folder")
    add.add_argument("run_dir", help="a finished training folder (model.safetensors, metrics.csv)")
    add.add_argument("--name", required=True, help="entry name, e.g. swinlstm-b-mmnist-small")
    add.add_argument("--config", required=True, help="the preset the run was trained with")
    add.add_argument(  # not dest "command": that names the subcommand in error lines
        "--command", dest="train_command", required=True, help="the exact command that trained it"
    )
    add.add_argument("--description", required=True, help="one line for the listing")
    add.add_argument("--test_clips", type=int, default=2000, help="built-in test clips scored")
    add.add_argument("--machine", default=None, help="where it was trained (default: this one)")
    add.add_argument("--root", default=None, help="entries folder (default: the package's)")
    add.add_argument(
        "--after",
        default=None,
        metavar="NAME",
        help="the entry whose weights this run fine-tuned: its card's stages, hours and curve "
        "come first",
    )
    add.set_defaults(func=_add)


def _fmt(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _list(args: argparse.Namespace) -> int:
    from swinlstm.zoo import summary_rows

    rows = summary_rows()
    width = max(len(r["name"]) for r in rows)
    print(
        f"{'name':<{width}}  {'kind':<9}  {'model':<12}  {'MSE':>7}  {'SSIM':>5}  {'last-frame MSE':>14}"
    )
    for r in rows:
        print(
            f"{r['name']:<{width}}  {r['kind']:<9}  {r['model']:<12}  {_fmt(r['mse'], 2):>7}  "
            f"{_fmt(r['ssim'], 3):>5}  {_fmt(r['baseline_mse'], 2):>14}"
        )
    print(
        "MSE per frame, SSIM: the built-in 64x64 Moving MNIST test clips (cards: swinlstm/zoo/entries/)"
    )
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from swinlstm.zoo import entry, fetch_published

    e = entry(args.name)
    if e.published is None:
        print(f"zoo:{e.name} is shipped with the package: {e.shipped}")
        return 0
    print(f"zoo:{e.name}: {fetch_published(e.published)}")
    return 0


def _add(args: argparse.Namespace) -> int:
    from swinlstm.zoo.card import add_entry

    if args.test_clips < 1:
        raise ConfigError(f"--test_clips must be >= 1, got {args.test_clips}")
    after = None
    if args.after is not None:  # read before the entry (perhaps this very one) is rewritten
        from pathlib import Path

        from swinlstm.zoo import shipped_entries

        found = shipped_entries(Path(args.root) if args.root else None).get(args.after)
        if found is None:
            raise ConfigError(
                f"--after {args.after}: no shipped zoo entry of that name (swinlstm zoo lists them)"
            )
        after = found.card
    dest = add_entry(
        args.run_dir,
        args.name,
        args.config,
        command=args.train_command,
        description=args.description,
        test_clips=args.test_clips,
        root=args.root,
        trained_on=args.machine,
        after=after,
    )
    print(f"zoo:{args.name} written to {dest} (card.md, card.json, weights)")
    return 0
