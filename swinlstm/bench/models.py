"""``swinlstm bench models``: speed, FLOPs and memory of the networks, at the paper's
configurations and at the small ones a CPU user trains (issue 19).

Every (model, batch, mode) row runs in a fresh subprocess, so its peak memory
(``ru_maxrss`` minus the RSS after building the model) is its own. Modes:

* ``fp32``: the plain model;
* ``bf16``: the same under ``torch.autocast("cpu", torch.bfloat16)``;
* ``checkpointing``: ``checkpointing=True`` (activation checkpointing, fp32);
* ``compile``: ``compile=True`` (``torch.compile`` of the step, fp32; compile time excluded);
* ``authors``: the authors' ``SwinLSTM_B.py`` / ``SwinLSTM_D.py`` from ``--baseline-authors DIR``
  (needs whatever they import, e.g. timm), fp32, with their recurrence. Their patch inflation is
  fixed at stride 2, so only rows with ``patch_size=2`` have it.

Columns: parameters; forward GFLOPs per sequence (``torch.utils.flop_counter`` over one
forward, divided by the batch); inference time (no-grad forward); training-step time (forward,
MSE over all outputs, backward, Adam step); peak memory of inference and of training; achieved
GFLOP/s (forward FLOPs / inference time, 3x forward FLOPs per pass / training time) and its fraction of
the machine's fp32 matmul GFLOP/s, measured in the same run with the same threads.

Schedule in a row's process: the network's first inference and first training step are untimed
(they give the peak memory, and a compiled step compiles in them), then ``--warmup`` rounds,
then ``--steps`` timed rounds; a round is one training step then one inference, and the times are
the medians of the timed rounds.

``--baseline-authors DIR`` also adds, to each of our rows that has an authors' baseline, the
columns ``infer vs authors`` and ``train vs authors``: the authors' time / ours (above 1: ours
is faster), measured in that row's process with both networks built, interleaved. After both
networks' untimed first calls, each warm-up and timed round runs the authors' training step,
ours, the authors' inference, ours; both sides' times are medians of the same rounds. The
authors' network always runs as published (plain fp32), whatever our row's mode. Rows without
a baseline show "-" there. The separate ``authors`` rows stay: their memory peak and FLOPs need
a process of their own.

Compile rows: the compile warm-up (every untimed call's time beyond the row's median step,
summed, for inference and for training) is left out of the step times and printed in a note
under the table, with the ratio over a 10-minute run (:data:`RUN_SECONDS`):
``authors_s * n / (compile_s + ours_s * n)``, ``n`` the authors' steps in 10 minutes, i.e. the
time the authors' code needs for a 10-minute run's steps over the time ours needs for the same
steps, compile included. ``--json`` writes all of these per row (``compile_infer_s``,
``compile_train_s``, ``authors_infer_s``, ``authors_train_s``, ``infer_vs_authors``,
``train_vs_authors``, ``infer_vs_authors_10min``, ``train_vs_authors_10min``; null where a row
has none).

Rows: ``swinlstm-b`` / ``swinlstm-d`` (the paper's Moving MNIST configs), ``swinlstm-d-memory``
(-D with ``memory_size=100``), ``convlstm`` (OpenSTL's Moving MNIST config) and
``lmc-convlstm`` (LMC-Memory's predictor) run by default; the small configurations (issue 19,
:data:`MODELS`' rows with ``small=True``) run with ``--small`` or by name, each at its own
batch sizes unless ``--batch`` is given. For the memory models inference is phase 2 and the
training step is the two-phase memory alignment (two forward/backward passes and two Adam
steps, phase 1 on a ``LONG_LEN``-frame long clip), so their training GFLOP/s count 6x the
forward FLOPs. Modes a network has no option for (checkpointing / compile / an authors'
baseline for ConvLSTM or the memory models) are skipped. Add a :class:`BenchModel` to
:data:`MODELS` to give a network rows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from swinlstm.errors import ConfigError, MissingPathError
from swinlstm.helpers import as_hw


@dataclass(frozen=True)
class BenchModel:
    """One benchmarked network: ``build_model(name, **options)``, ``name`` a registry name (a
    named variant of :mod:`swinlstm.models.variants` for the published configurations).

    ``alignment``: the training step is LMC-Memory's two-phase memory alignment
    (:func:`swinlstm.engine.rules.memory_alignment_step`, long clip of ``LONG_LEN`` frames),
    inference is phase 2. ``swin``: a SwinLSTM (has the checkpointing / compile options and an
    authors' baseline). ``batches``: the batch sizes the row runs at when ``--batch`` is not
    given. ``small``: one of the small configurations ``--small`` selects (issue 19).
    ``by_name``: runs only when ``--models`` names it.
    """

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    alignment: bool = False
    swin: bool = True
    batches: tuple[int, ...] = (1, 4)
    small: bool = False
    by_name: bool = False

    @property
    def base(self) -> str:
        """The base model ``name`` builds (``swinlstm-b`` for ``swinlstm-b-mmnist``)."""
        from swinlstm.models import resolve_model

        return resolve_model(self.name)[0]

    @property
    def config(self) -> dict[str, Any]:
        """Every option the network is built with: the variant's, then ``options``."""
        from swinlstm.models import resolve_model

        return {**resolve_model(self.name)[1], **self.options}

    def applies(self, mode: str) -> bool:
        """Whether ``mode`` makes sense for this network (options it has, a baseline to run)."""
        if mode in ("checkpointing", "compile"):
            return self.swin
        if mode == "authors":  # their patch inflation has stride 2
            return (
                self.swin
                and not self.config.get("memory_size")
                and self.config.get("patch_size", 2) == 2
            )
        return True

    @property
    def train_passes(self) -> int:
        """Forward + backward passes per training step (memory alignment: phase 1 and 2)."""
        return 2 if self.alignment else 1


#: what every small configuration shares: grey frames, patch 2 (the authors' code inflates
#: patches at stride 2 only), window 4
_SMALL = dict(in_chans=1, patch_size=2, window_size=4)


def _small(base, batches, img_size, embed_dim, num_heads, **depths) -> BenchModel:
    """A small configuration: ``base`` (``swinlstm-b`` / ``-d``) with :data:`_SMALL`, square
    ``img_size`` frames, ``embed_dim``, ``num_heads`` and the depths (``depths``, or
    ``depths_down`` and ``depths_up``), run at ``batches``."""
    options = dict(_SMALL, img_size=img_size, embed_dim=embed_dim, num_heads=num_heads, **depths)
    return BenchModel(base, options, batches=batches, small=True)


#: row name -> network (the paper's / OpenSTL's / LMC-Memory's Moving MNIST configurations)
MODELS: dict[str, BenchModel] = {
    "swinlstm-b": BenchModel("swinlstm-b-mmnist"),
    "swinlstm-d": BenchModel("swinlstm-d-mmnist"),
    "swinlstm-d-memory": BenchModel("swinlstm-d-mmnist", dict(memory_size=100), alignment=True),
    "convlstm": BenchModel("convlstm-mmnist", swin=False),
    "lmc-convlstm": BenchModel("lmc-convlstm-mmnist", alignment=True, swin=False),
    # the small configurations a CPU user trains (issue 19: embed 16-64, 1-4 blocks per level,
    # 8x8 to 32x32 token grids, batch 1-16); all patch 2, so the authors' code runs them too
    # SwinLSTM-B, 32x32 frames -> 16x16 tokens, embed 32, 2 blocks (the issue's first row, batch 8)
    "swinlstm-b-small": _small("swinlstm-b", (8,), 32, 32, [4], depths=[2]),
    # SwinLSTM-D, 64x64 frames -> 32x32 tokens (16x16 after the merge), embed 32, 2 + 2 blocks
    # down and up (the issue's second row, batch 4)
    "swinlstm-d-small": _small(
        "swinlstm-d", (4,), 64, 32, [4, 8], depths_down=[2, 2], depths_up=[2, 2]
    ),
    # SwinLSTM-B, 16x16 frames -> 8x8 tokens, embed 16, 1 block (the range's smallest)
    "swinlstm-b-tiny": _small("swinlstm-b", (1, 16), 16, 16, [2], depths=[1]),
    # SwinLSTM-B, 32x32 frames -> 16x16 tokens, embed 64, 4 blocks (the range's widest, deepest)
    "swinlstm-b-wide": _small("swinlstm-b", (1, 4), 32, 64, [4], depths=[4]),
    # SwinLSTM-D, 32x32 frames -> 16x16 tokens (8x8 after the merge), embed 16, 1 + 1 blocks
    # down and up
    "swinlstm-d-tiny": _small(
        "swinlstm-d", (16,), 32, 16, [2, 4], depths_down=[1, 1], depths_up=[1, 1]
    ),
    # the zoo's SwinLSTM-B preset (configs/zoo/swinlstm_b_mmnist.yaml: 64x64 frames -> 16x16
    # tokens of 4x4 patches, embed 64, 3 blocks): what `compile: auto` was measured on; first the
    # preset's batch (4), then 8 and 16, the batches of the earlier measurements; patch 4, so no
    # authors' baseline
    "swinlstm-b-zoo": BenchModel(
        "swinlstm-b",
        dict(
            img_size=64,
            in_chans=1,
            patch_size=4,
            embed_dim=64,
            depths=[3],
            num_heads=[4],
            window_size=4,
            drop_path_rate=0.0,
        ),
        batches=(4, 8, 16),
        by_name=True,
    ),
}

#: the rows that run when neither ``--models`` nor ``--small`` is given
PAPER = [name for name, bench in MODELS.items() if not (bench.small or bench.by_name)]
#: the rows ``--small`` selects
SMALL = [name for name, bench in MODELS.items() if bench.small]

#: the length of the run the compile rows' effective ratio is taken over (10 minutes)
RUN_SECONDS = 600.0

#: frames of the long clip the memory-alignment training step reads in phase 1
LONG_LEN = 20

MODES = ("fp32", "bf16", "checkpointing", "compile", "authors")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def matmul_gflops(threads: int, dtype: str = "float32", n: int = 1024, seconds: float = 2.0):
    """Best GFLOP/s of an n x n matmul with ``threads`` threads."""
    import torch

    torch.set_num_threads(threads)
    dt = getattr(torch, dtype)
    a, b = torch.randn(n, n, dtype=dt), torch.randn(n, n, dtype=dt)
    a @ b
    best, start = 0.0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


# ----------------------------------------------------------------------------------------------
# The worker: one row
# ----------------------------------------------------------------------------------------------
#: the authors' file of each base model they published
AUTHORS_FILES = {"swinlstm-b": "SwinLSTM_B.py", "swinlstm-d": "SwinLSTM_D.py"}


class _AuthorsNet:
    """The authors' network behind our ``model(frames, out_len)`` call (their recurrence)."""

    def __init__(self, directory: str, name: str, config: dict[str, Any]):
        if name not in AUTHORS_FILES or config.get("memory_size"):
            raise ConfigError(f"no authors' baseline for {name} with {config}")
        if config.get("patch_size", 2) != 2:
            raise ConfigError(
                f"the authors' code inflates patches at stride 2 only: patch_size must be 2, "
                f"got {config['patch_size']}"
            )
        import importlib

        import torch

        if directory not in sys.path:
            sys.path.insert(0, directory)
        c = config
        mod = importlib.import_module(AUTHORS_FILES[name][: -len(".py")])
        if name == "swinlstm-b":
            self.net = mod.SwinLSTM(
                c["img_size"], c["patch_size"], c["in_chans"], c["embed_dim"], c["depths"],
                c["num_heads"], c["window_size"], 0.0, 0.0, c.get("drop_path_rate", 0.1),
            )  # fmt: skip
            self.multi = False
            self.levels = len(c["depths"])
        else:
            self.net = mod.SwinLSTM(
                c["img_size"], c["patch_size"], c["in_chans"], c["embed_dim"], c["depths_down"],
                c["depths_up"], c["num_heads"], c["window_size"],
            )  # fmt: skip
            self.multi = True
            self.levels = len(c["depths_down"])
        self.torch = torch

    def __getattr__(self, item):
        return getattr(self.net, item)

    def __call__(self, frames, out_len):
        """(B, T, C, H, W) frames -> (B, T - 1 + out_len, C, H, W) outputs."""
        states = [None] * self.levels
        up = [None] * self.levels
        outs = []
        inputs = [frames[:, t] for t in range(frames.shape[1] - 1)]
        last = frames[:, -1]
        for step in range(len(inputs) + out_len):
            x = inputs[step] if step < len(inputs) else last
            if self.multi:
                y, states, up = self.net(x, states, up)
            else:
                y, states = self.net(x, states)
            outs.append(y)
            if step >= len(inputs):
                last = y
        return self.torch.stack(outs, 1)


def _steps(
    model, frames, future, out_len, *, alignment=False, long=None, autocast=contextlib.nullcontext
):
    """``{"infer": fn, "train": fn}`` for ``model`` on (B, T, C, H, W) ``frames`` and
    (B, out_len, C, H, W) ``future``: a no-grad forward, and a training step (forward, MSE over
    every output, backward, Adam step; the memory alignment when ``alignment``, phase 1 on
    ``long``), both under ``autocast()``."""
    import torch

    from swinlstm.engine.rules import memory_alignment_step

    if getattr(model, "forecast_only", False):
        target = future
    else:
        target = torch.cat([frames[:, 1:], future], dim=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def infer():
        model.eval()
        with torch.no_grad(), autocast():
            model(frames, out_len)

    def train():
        model.train()
        if alignment:
            with autocast():
                memory_alignment_step(model, opt, frames, target, long, out_len)
            return
        opt.zero_grad(set_to_none=True)
        with autocast():
            out = model(frames, out_len)
            loss = torch.nn.functional.mse_loss(out.float(), target)
        loss.backward()
        opt.step()

    return dict(infer=infer, train=train)


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _rounds(runners: list[dict], rounds: int, phases: tuple[str, ...]) -> list[dict]:
    """Run ``rounds`` rounds; in each, every phase of every runner in turn (phases outside,
    runners inside: authors train, ours train, authors infer, ours infer). Returns per runner
    ``{phase: [seconds of each round]}``."""
    times = [{phase: [] for phase in phases} for _ in runners]
    for _ in range(rounds):
        for phase in phases:
            for runner, seconds in zip(runners, times):
                seconds[phase].append(_seconds(runner[phase]))
    return times


def compile_seconds(untimed: list[float], median: float) -> float:
    """The compile warm-up: what the untimed calls took beyond the ``median`` step, summed."""
    return sum(max(0.0, t - median) for t in untimed)


def run_ratio(authors_s: float, ours_s: float, compile_s: float, seconds=RUN_SECONDS) -> float:
    """Authors' time / ours over a run of ``seconds``: ``n`` = the authors' steps in it (at least
    one), ``authors_s * n / (compile_s + ours_s * n)``."""
    n = max(1, int(seconds // authors_s))
    return authors_s * n / (compile_s + ours_s * n)


#: what a row adds with --baseline-authors or as a compile row (None where it has none)
VERSUS_FIELDS = (
    "compile_infer_s", "compile_train_s", "authors_infer_s", "authors_train_s",
    "infer_vs_authors", "train_vs_authors", "infer_vs_authors_10min", "train_vs_authors_10min",
)  # fmt: skip


def run_row(spec: dict[str, Any]) -> dict[str, Any]:
    """Measure one row (runs inside its own subprocess); with ``spec["versus_authors"]`` also
    the authors' network, interleaved with ours (see the module's docstring)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from swinlstm.models import build_model

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    mode, batch = spec["mode"], spec["batch"]
    bench = MODELS[spec["model"]]
    config = dict(bench.config)
    if mode == "authors":
        model = _AuthorsNet(spec["authors_dir"], bench.base, config)
    else:
        if bench.swin:
            config.update(checkpointing=mode == "checkpointing", compile=mode == "compile")
        model = build_model(bench.name, **config)
    params = sum(p.numel() for p in model.parameters())
    size, chans = as_hw(config["img_size"]), config["in_chans"]
    in_len, out_len = spec["in_len"], spec["out_len"]
    frames = torch.rand(batch, in_len, chans, *size)
    future = torch.rand(batch, out_len, chans, *size)
    long = torch.rand(batch, LONG_LEN, chans, *size) if bench.alignment else None
    autocast = contextlib.nullcontext
    if mode == "bf16":

        def autocast():
            return torch.autocast("cpu", dtype=torch.bfloat16)

    ours = _steps(
        model, frames, future, out_len, alignment=bench.alignment, long=long, autocast=autocast
    )
    no_train = spec.get("no_train")  # None (JSON null, shown "-"): not measured
    phases = ("infer",) if no_train else ("train", "infer")  # a round's order

    rss0 = _rss_mb()
    first = {"infer": _seconds(ours["infer"])}  # the first calls: inference, then training
    peak_infer = _maxrss_mb() - rss0
    peak_train = None
    if not no_train:
        first["train"] = _seconds(ours["train"])
        peak_train = _maxrss_mb() - rss0
    runners = [ours]
    if spec.get("versus_authors"):  # built after our peaks: they stay ours alone
        torch.manual_seed(0)
        theirs = _AuthorsNet(spec["authors_dir"], bench.base, dict(bench.config))
        runners.insert(0, _steps(theirs, frames, future, out_len))
        for phase in first:  # their first calls, untimed as ours
            runners[0][phase]()
    warm = _rounds(runners, spec["warmup"], phases)
    timed = _rounds(runners, spec["steps"], phases)
    medians = [{phase: statistics.median(t[phase]) for phase in phases} for t in timed]
    mine = medians[-1]

    flops = None
    if mode != "compile":  # the compiled step does the same math; count it on the plain path
        model.eval()
        if hasattr(model, "chunked"):  # the chunked kernel's in-place addmm_ goes uncounted:
            model.chunked = False  # count the same math on the plain layers
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), autocast(), counter:
            model(frames, out_len)
        flops = counter.get_total_flops()
    row = dict(
        params=params,
        flops=flops,
        infer_s=mine["infer"],
        train_s=mine.get("train"),
        peak_infer_mb=peak_infer,
        peak_train_mb=peak_train,
        **dict.fromkeys(VERSUS_FIELDS),
    )
    if mode == "compile":
        for phase in phases:
            untimed = [first[phase], *warm[-1][phase]]
            row[f"compile_{phase}_s"] = compile_seconds(untimed, mine[phase])
    if len(runners) == 2:
        for phase in phases:
            authors_s = medians[0][phase]
            row[f"authors_{phase}_s"] = authors_s
            row[f"{phase}_vs_authors"] = authors_s / mine[phase]
            if mode == "compile":
                row[f"{phase}_vs_authors_10min"] = run_ratio(
                    authors_s, mine[phase], row[f"compile_{phase}_s"]
                )
    return row


# ----------------------------------------------------------------------------------------------
# The driver
# ----------------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """A bad flag is a :class:`ConfigError`: one line from ``swinlstm bench models``."""

    def error(self, message: str):
        raise ConfigError(f"{message} (see {self.prog} --help)")


def _parse(argv: list[str]) -> argparse.Namespace:
    p = _Parser(prog="swinlstm bench models", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--models",
        nargs="+",
        choices=sorted(MODELS),
        metavar="ROW",
        help=f"rows to run, of {' '.join(MODELS)} (default: {' '.join(PAPER)}; none with --small)",
    )
    p.add_argument(
        "--small",
        action="store_true",
        help=f"also run the small configurations of issue 19 ({' '.join(SMALL)})",
    )
    p.add_argument(
        "--batch",
        nargs="+",
        type=int,
        help="batch sizes (default: each row's own: 1 4 for the paper's, issue 19's 8 for "
        "swinlstm-b-small and 4 for swinlstm-d-small)",
    )
    p.add_argument("--modes", nargs="+", default=["fp32", "bf16", "checkpointing", "compile"])
    p.add_argument("--in-len", type=int, default=10)
    p.add_argument("--out-len", type=int, default=10)
    p.add_argument("--steps", type=int, default=3, help="timed repetitions (median)")
    p.add_argument(
        "--warmup", type=int, default=1, help="untimed rounds after the untimed first calls"
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-train", action="store_true", help="time inference only")
    p.add_argument(
        "--baseline-authors",
        metavar="DIR",
        help="directory with the authors' SwinLSTM_B.py / SwinLSTM_D.py: adds 'authors' rows "
        "and, to our rows, their time / ours measured interleaved in the same process",
    )
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return args
    models = list(args.models or ([] if args.small else PAPER))
    args.models = models + [m for m in SMALL if args.small and m not in models]
    bad = sorted(set(args.modes) - set(MODES))
    if bad:
        raise ConfigError(f"--modes: unknown modes {bad}; choose from {', '.join(MODES)}")
    if args.baseline_authors and "authors" not in args.modes:
        args.modes = ["authors", *args.modes]
    if "authors" in args.modes and not args.baseline_authors:
        raise ConfigError("--modes: mode 'authors' needs --baseline-authors DIR")
    if args.baseline_authors:
        _check_authors_dir(args.baseline_authors, args.models)
    if min(args.batch or [1]) < 1 or args.steps < 1 or args.in_len < 1 or args.out_len < 1:
        raise ConfigError("--batch, --steps, --in-len and --out-len must be >= 1")
    if args.warmup < 0:
        raise ConfigError(f"--warmup must be >= 0, got {args.warmup}")
    return args


def _check_authors_dir(directory: str, models: list[str]) -> None:
    """The folder exists and holds the authors' file of every chosen row with a baseline."""
    if not os.path.isdir(directory):
        raise MissingPathError(
            f"--baseline-authors: no directory {directory} (it must hold the authors' "
            f"{' / '.join(AUTHORS_FILES.values())})"
        )
    for name in models:
        bench = MODELS[name]
        if not bench.applies("authors"):
            continue
        path = os.path.join(directory, AUTHORS_FILES[bench.base])
        if not os.path.isfile(path):
            raise MissingPathError(
                f"--baseline-authors: no {path} (row {name} needs the authors' "
                f"{AUTHORS_FILES[bench.base]})"
            )


def _spawn(spec: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(spec["threads"]))
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "swinlstm.bench.models", "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return dict(error=tail)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _json_safe(value):
    """NaN / inf -> None (JSON has no NaN: ``json.dump`` would write invalid JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _fmt(v, spec=".2f"):
    return "-" if v is None or v != v else format(v, spec)


def _num(v) -> str:
    """``v`` to 2 decimals, or to 3 significant digits below 1 (the small rows' sizes and
    times); "-" for None / NaN."""
    return _fmt(v, ".2f" if v is None or v != v or abs(v) >= 1 else ".3g")


def _row_line(r: dict[str, Any], peak32: float, versus: bool) -> str:
    """One table line of a measured row ``r`` (spec and result)."""
    name, batch, mode = r["model"], r["batch"], r["mode"]
    gf = r["flops"] / 1e9 if r["flops"] else None
    ips = gf / r["infer_s"] if gf else None
    tps = 3 * MODELS[name].train_passes * gf / r["train_s"] if gf and r["train_s"] else None
    cells = [
        name, str(batch), mode, _num(r["params"] / 1e6), _num(gf / batch if gf else None),
        _num(r["infer_s"]), _num(r["train_s"]), f"{r['peak_infer_mb']:.0f}",
        _fmt(r["peak_train_mb"], ".0f"),
        f"{_fmt(ips, '.0f')} ({_fmt(ips and 100 * ips / peak32, '.0f')}%)",
        f"{_fmt(tps, '.0f')} ({_fmt(tps and 100 * tps / peak32, '.0f')}%)",
    ]  # fmt: skip
    if versus:
        cells += [_fmt(r.get("infer_vs_authors")), _fmt(r.get("train_vs_authors"))]
    return "| " + " | ".join(cells) + " |"


def _compile_note(r: dict[str, Any]) -> str:
    """The note line of a compile row: its compile warm-up and, against the authors' code, the
    ratio over a 10-minute run."""
    note = (
        f"# {r['model']} batch {r['batch']} compile: compile warm-up "
        f"{_fmt(r['compile_infer_s'], '.1f')} s (inference) + "
        f"{_fmt(r['compile_train_s'], '.1f')} s (training), not in the step times"
    )
    if r.get("infer_vs_authors") is not None:
        note += (
            f"; authors / ours over a {RUN_SECONDS / 60:.0f}-minute run, compile included: "
            f"infer {_fmt(r['infer_vs_authors_10min'])}, train {_fmt(r['train_vs_authors_10min'])}"
        )
    return note


def main(argv: list[str] | None = None) -> int:
    args = _parse(list(sys.argv[1:] if argv is None else argv))
    if args.worker:
        print(json.dumps(run_row(json.loads(args.worker))))
        return 0
    import torch

    peak32 = matmul_gflops(args.threads, "float32")
    peak16 = matmul_gflops(args.threads, "bfloat16")
    print(
        f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, {args.threads} threads; clip {args.in_len}->{args.out_len}, "
        f"median of {args.steps} after {args.warmup} warm-up"
    )
    print(
        f"# matmul peak (1024^3, same threads): fp32 {peak32:.1f} GFLOP/s, bf16 {peak16:.1f} GFLOP/s"
    )
    versus = bool(args.baseline_authors)
    header = (
        "| model | batch | mode | params (M) | fwd GFLOP/seq | infer s | train step s | "
        "peak infer MB | peak train MB | infer GFLOP/s (% fp32 peak) | train GFLOP/s (% fp32 peak) |"
    )
    if versus:
        header += " infer vs authors | train vs authors |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    rows, notes = [], []
    for name in args.models:
        bench = MODELS[name]
        for batch in args.batch or bench.batches:
            for mode in args.modes:
                if not bench.applies(mode):
                    continue
                spec = dict(
                    model=name, batch=batch, mode=mode, threads=args.threads,
                    in_len=args.in_len, out_len=args.out_len, steps=args.steps,
                    warmup=args.warmup, no_train=args.no_train,
                    authors_dir=args.baseline_authors,
                    versus_authors=versus and mode != "authors" and bench.applies("authors"),
                )  # fmt: skip
                r = _spawn(spec)
                rows.append({**spec, **r})
                if "error" in r:
                    print(f"| {name} | {batch} | {mode} | error: {r['error']} |", flush=True)
                    continue
                if r["flops"] is None:  # compile rows: the same math as our other rows
                    rows[-1]["flops"] = next(
                        (x["flops"] for x in rows if x["model"] == name and x["batch"] == batch
                         and x["mode"] != "authors" and x.get("flops")), None,
                    )  # fmt: skip
                print(_row_line(rows[-1], peak32, versus), flush=True)
                if mode == "compile":
                    notes.append(_compile_note(rows[-1]))
    for note in notes:
        print(note)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                _json_safe(dict(peak_fp32=peak32, peak_bf16=peak16, rows=rows)),
                f,
                indent=1,
                allow_nan=False,
            )
    return 0


if __name__ == "__main__":  # ``python -m swinlstm.bench.models``: a bad flag is one line too
    try:
        raise SystemExit(main())
    except ConfigError as err:
        print(f"swinlstm bench models: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
