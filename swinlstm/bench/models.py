"""``swinlstm bench models``: speed, FLOPs and memory of the networks at the paper's configs.

Every (model, batch, mode) row runs in a fresh subprocess, so its peak memory
(``ru_maxrss`` minus the RSS after building the model) is its own. Modes:

* ``fp32``: the plain model;
* ``bf16``: the same under ``torch.autocast("cpu", torch.bfloat16)``;
* ``checkpointing``: ``checkpointing=True`` (activation checkpointing, fp32);
* ``compile``: ``compile=True`` (``torch.compile`` of the step, fp32; compile time excluded);
* ``authors``: the authors' ``SwinLSTM_B.py`` / ``SwinLSTM_D.py`` from ``--baseline-authors DIR``
  (needs whatever they import, e.g. timm), fp32, with their recurrence.

Columns: parameters; forward GFLOPs per sequence (``torch.utils.flop_counter`` over one
forward, divided by the batch); inference time (no-grad forward); training-step time (forward,
MSE over all outputs, backward, Adam step); peak memory of inference and of training; achieved
GFLOP/s (forward FLOPs / inference time, 3x forward FLOPs per pass / training time) and its fraction of
the machine's fp32 matmul GFLOP/s, measured in the same run with the same threads.

Rows: ``swinlstm-b`` / ``swinlstm-d`` (the paper's Moving MNIST configs), ``swinlstm-d-memory``
(-D with ``memory_size=100``), ``convlstm`` (OpenSTL's Moving MNIST config) and
``lmc-convlstm`` (LMC-Memory's predictor). For the memory models inference is phase 2 and the
training step is the two-phase memory alignment (two forward/backward passes and two Adam
steps, phase 1 on a ``LONG_LEN``-frame long clip), so their training GFLOP/s count 6x the
forward FLOPs. Modes a network has no option for (checkpointing / compile / an authors'
baseline for ConvLSTM or the memory models) are skipped. Add a :class:`BenchModel` to
:data:`MODELS` to give a network rows.
"""

from __future__ import annotations

import argparse
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

from swinlstm.errors import ConfigError
from swinlstm.helpers import as_hw


@dataclass(frozen=True)
class BenchModel:
    """One benchmarked network: ``build_model(name, **options)``, ``name`` a registry name (a
    named variant of :mod:`swinlstm.models.variants` for the published configurations).

    ``alignment``: the training step is LMC-Memory's two-phase memory alignment
    (:func:`swinlstm.engine.rules.memory_alignment_step`, long clip of ``LONG_LEN`` frames),
    inference is phase 2. ``swin``: a SwinLSTM (has the checkpointing / compile options and an
    authors' baseline).
    """

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    alignment: bool = False
    swin: bool = True

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
        if mode == "authors":
            return self.swin and not self.config.get("memory_size")
        return True

    @property
    def train_passes(self) -> int:
        """Forward + backward passes per training step (memory alignment: phase 1 and 2)."""
        return 2 if self.alignment else 1


#: row name -> network (the paper's / OpenSTL's / LMC-Memory's Moving MNIST configurations)
MODELS: dict[str, BenchModel] = {
    "swinlstm-b": BenchModel("swinlstm-b-mmnist"),
    "swinlstm-d": BenchModel("swinlstm-d-mmnist"),
    "swinlstm-d-memory": BenchModel("swinlstm-d-mmnist", dict(memory_size=100), alignment=True),
    "convlstm": BenchModel("convlstm-mmnist", swin=False),
    "lmc-convlstm": BenchModel("lmc-convlstm-mmnist", alignment=True, swin=False),
}

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
class _AuthorsNet:
    """The authors' network behind our ``model(frames, out_len)`` call (their recurrence)."""

    def __init__(self, directory: str, name: str, config: dict[str, Any]):
        if name not in ("swinlstm-b", "swinlstm-d") or config.get("memory_size"):
            raise ConfigError(f"no authors' baseline for {name} with {config}")
        import importlib

        import torch

        sys.path.insert(0, directory)
        c = config
        if name == "swinlstm-b":
            mod = importlib.import_module("SwinLSTM_B")
            self.net = mod.SwinLSTM(
                c["img_size"], c["patch_size"], c["in_chans"], c["embed_dim"], c["depths"],
                c["num_heads"], c["window_size"], 0.0, 0.0, c.get("drop_path_rate", 0.1),
            )  # fmt: skip
            self.multi = False
            self.levels = len(c["depths"])
        elif name == "swinlstm-d":
            mod = importlib.import_module("SwinLSTM_D")
            self.net = mod.SwinLSTM(
                c["img_size"], c["patch_size"], c["in_chans"], c["embed_dim"], c["depths_down"],
                c["depths_up"], c["num_heads"], c["window_size"],
            )  # fmt: skip
            self.multi = True
            self.levels = len(c["depths_down"])
        else:
            raise ConfigError(f"no authors' baseline for {name}")
        self.torch = torch

    def __getattr__(self, item):
        return getattr(self.net, item)

    def __call__(self, frames, out_len):
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


def run_row(spec: dict[str, Any]) -> dict[str, Any]:
    """Measure one row (runs inside its own subprocess)."""
    import contextlib

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from swinlstm.engine.rules import memory_alignment_step
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
    if getattr(model, "forecast_only", False):
        target = future
    else:
        target = torch.cat([frames[:, 1:], future], dim=1)
    autocast = (
        torch.autocast("cpu", dtype=torch.bfloat16) if mode == "bf16" else contextlib.nullcontext()
    )

    def infer():
        model.eval()
        with torch.no_grad(), autocast:
            model(frames, out_len)

    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def train():
        model.train()
        if bench.alignment:
            with autocast:
                memory_alignment_step(model, opt, frames, target, long, out_len)
            return
        opt.zero_grad(set_to_none=True)
        with autocast:
            out = model(frames, out_len)
            loss = torch.nn.functional.mse_loss(out.float(), target)
        loss.backward()
        opt.step()

    def timed(fn):
        for _ in range(spec["warmup"]):
            fn()
        times = []
        for _ in range(spec["steps"]):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    rss0 = _rss_mb()
    t_infer = timed(infer)
    peak_infer = _maxrss_mb() - rss0
    no_train = spec.get("no_train")  # None (JSON null, shown "-"): not measured
    t_train = None if no_train else timed(train)
    peak_train = None if no_train else _maxrss_mb() - rss0
    flops = None
    if mode != "compile":  # the compiled step does the same math; count it on the plain path
        model.eval()
        if hasattr(model, "chunked"):  # the chunked kernel's in-place addmm_ goes uncounted:
            model.chunked = False  # count the same math on the plain layers
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), autocast, counter:
            model(frames, out_len)
        flops = counter.get_total_flops()
    return dict(
        params=params,
        flops=flops,
        infer_s=t_infer,
        train_s=t_train,
        peak_infer_mb=peak_infer,
        peak_train_mb=peak_train,
    )


# ----------------------------------------------------------------------------------------------
# The driver
# ----------------------------------------------------------------------------------------------
def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="swinlstm bench models", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=sorted(MODELS))
    p.add_argument("--batch", nargs="+", type=int, default=[1, 4])
    p.add_argument("--modes", nargs="+", default=["fp32", "bf16", "checkpointing", "compile"])
    p.add_argument("--in-len", type=int, default=10)
    p.add_argument("--out-len", type=int, default=10)
    p.add_argument("--steps", type=int, default=3, help="timed repetitions (median)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-train", action="store_true", help="time inference only")
    p.add_argument(
        "--baseline-authors",
        metavar="DIR",
        help="directory with the authors' SwinLSTM_B.py / SwinLSTM_D.py: adds 'authors' rows",
    )
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    bad = sorted(set(args.modes) - set(MODES))
    if bad:
        p.error(f"unknown modes {bad}; choose from {', '.join(MODES)}")
    if args.baseline_authors and "authors" not in args.modes:
        args.modes = ["authors", *args.modes]
    if "authors" in args.modes and not args.baseline_authors:
        p.error("mode 'authors' needs --baseline-authors DIR")
    if args.baseline_authors and not os.path.isdir(args.baseline_authors):
        p.error(f"--baseline-authors: no directory {args.baseline_authors}")
    if min(args.batch) < 1 or args.steps < 1 or args.in_len < 1 or args.out_len < 1:
        p.error("--batch, --steps, --in-len and --out-len must be >= 1")
    return args


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
    header = (
        "| model | batch | mode | params (M) | fwd GFLOP/seq | infer s | train step s | "
        "peak infer MB | peak train MB | infer GFLOP/s (% fp32 peak) | train GFLOP/s (% fp32 peak) |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    rows = []
    for name in args.models:
        for batch in args.batch:
            for mode in args.modes:
                if not MODELS[name].applies(mode):
                    continue
                spec = dict(
                    model=name, batch=batch, mode=mode, threads=args.threads,
                    in_len=args.in_len, out_len=args.out_len, steps=args.steps,
                    warmup=args.warmup, no_train=args.no_train,
                    authors_dir=args.baseline_authors,
                )  # fmt: skip
                r = _spawn(spec)
                rows.append({**spec, **r})
                if "error" in r:
                    print(f"| {name} | {batch} | {mode} | error: {r['error']} |", flush=True)
                    continue
                flops = r["flops"]
                if flops is None:  # compile rows: same math as fp32
                    flops = next(
                        (x["flops"] for x in rows if x["model"] == name and x["batch"] == batch
                         and x.get("flops")), None,
                    )  # fmt: skip
                    r["flops"] = flops
                gf = flops / 1e9 if flops else None
                ips = gf / r["infer_s"] if gf else None
                tps = (
                    3 * MODELS[name].train_passes * gf / r["train_s"]
                    if gf and r["train_s"]
                    else None
                )
                print(
                    f"| {name} | {batch} | {mode} | {r['params'] / 1e6:.2f} | "
                    f"{_fmt(gf / batch if gf else None)} | {_fmt(r['infer_s'])} | "
                    f"{_fmt(r['train_s'])} | {r['peak_infer_mb']:.0f} | {_fmt(r['peak_train_mb'], '.0f')} | "
                    f"{_fmt(ips, '.0f')} ({_fmt(ips and 100 * ips / peak32, '.0f')}%) | "
                    f"{_fmt(tps, '.0f')} ({_fmt(tps and 100 * tps / peak32, '.0f')}%) |",
                    flush=True,
                )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                _json_safe(dict(peak_fp32=peak32, peak_bf16=peak16, rows=rows)),
                f,
                indent=1,
                allow_nan=False,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
