"""Probes behind docs/benchmarks.md, "Where the last two rows' time goes, and data parallelism
over the cores" and "Cached warm-ups" (issue 19): each subcommand times one thing about a
compiled training step of a ``swinlstm bench models`` row and prints one line. Not part of the
package or the tests.

    python tools/speed_probes.py split swinlstm-d-small 4         # forward pieces vs the step
    python tools/speed_probes.py step swinlstm-b-wide 2 --threads 1
    python tools/speed_probes.py ddp swinlstm-b-wide 2            # 2 processes x 1 thread
    python tools/speed_probes.py options swinlstm-b-wide 4 '{"aggressive_fusion": true}'
    PYTHONPATH=/tmp/refshim python tools/speed_probes.py authors swinlstm-d-small 4 \\
        --authors /tmp/refcode [--mallopt]
    python tools/speed_probes.py layernorm
    python tools/speed_probes.py warmup swinlstm-b-small 8 [--cprofile]  # a new process's first steps
    python tools/speed_probes.py wrapper                        # the compiled steps' wrapper

The training step is the benchmark's (``swinlstm.bench.models._steps``: forward over 10 -> 10,
MSE over every output, backward, Adam); ``compile=True``; medians.
"""

from __future__ import annotations

import argparse
import cProfile
import ctypes
import json
import os
import pstats
import resource
import statistics
import time

import torch
import torch._dynamo.config as dynamo_config

from swinlstm.bench import models as bench
from swinlstm.models import build_model
from swinlstm.models import swinlstm as swin

dynamo_config.recompile_limit = 64
dynamo_config.accumulated_recompile_limit = 1024


def _network(row: str, batch: int):
    """(compiled network, its {"infer", "train"} steps, frames, future) for a bench row."""
    spec = bench.MODELS[row]
    config = dict(spec.config, compile=True)
    size = config["img_size"]
    torch.manual_seed(1)
    frames = torch.rand(batch, 10, 1, size, size)
    future = torch.rand(batch, 10, 1, size, size)
    torch.manual_seed(0)
    model = build_model(spec.name, **config)
    return model, bench._steps(model, frames, future, 10), frames, future


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _median_ms(values) -> float:
    return round(statistics.median(values) * 1e3, 1)


def split(args) -> None:
    """The step, and each compiled piece of its forward (teacher-forced graph, fed-back step)."""
    model, steps, _, _ = _network(args.row, args.batch)
    for _ in range(2):
        steps["train"]()
    times: dict[str, list[float]] = {}
    compiled = model.__dict__["_compiled_fns"]

    def timing(name, fn):
        def run(*a, **kw):
            start = time.perf_counter()
            out = fn(*a, **kw)
            times.setdefault(name, []).append(time.perf_counter() - start)
            return out

        return run

    for name in list(compiled):
        compiled[name] = timing(name, compiled[name])
    total = [_timed(steps["train"]) for _ in range(args.rounds)]
    print(f"{args.row} batch {args.batch}: training step {_median_ms(total)} ms")
    for name, values in times.items():
        per_step = len(values) / args.rounds
        print(f"  {name}: {per_step:g} calls a step, {_median_ms(values)} ms each")


def step(args) -> None:
    """The training step on ``--threads`` threads."""
    _, steps, _, _ = _network(args.row, args.batch)
    for _ in range(2):
        steps["train"]()
    total = [_timed(steps["train"]) for _ in range(args.rounds)]
    print(f"{args.row} batch {args.batch}, {args.threads} threads: {_median_ms(total)} ms a step")


def _ddp_worker(rank: int, world: int, row: str, batch: int, rounds: int, port: int) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    model, _, frames, future = _network(row, batch)
    target = torch.cat([frames[:, 1:], future], dim=1)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def train():
        model.train()
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(ddp(frames, 10), target).backward()
        opt.step()

    for _ in range(2):
        train()
    total = []
    for _ in range(rounds):
        dist.barrier()
        total.append(_timed(lambda: (train(), dist.barrier())))
    if rank == 0:
        print(f"{row}: DDP {world} x batch {batch}, 1 thread each: {_median_ms(total)} ms a step")
    dist.destroy_process_group()


def ddp(args) -> None:
    """Data parallel over the cores: 2 processes of 1 thread, ``batch`` each, gloo."""
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, args.row, args.batch, args.rounds, args.port), nprocs=2)


def options(args) -> None:
    """Two copies of the network, the second compiled with extra Inductor options; their
    training steps interleaved (order alternating each round)."""
    extra = json.loads(args.inductor)
    _, default, _, _ = _network(args.row, args.batch)
    _, changed, _, _ = _network(args.row, args.batch)
    default["train"]()
    plain = swin.compile_options
    swin.compile_options = lambda device: {**(plain(device) or {}), **extra}
    try:
        changed["train"]()  # compiles with the options
    finally:
        swin.compile_options = plain
    runs = [("default", default), ("options", changed)]
    times: dict[str, list[float]] = {name: [] for name, _ in runs}
    for i in range(args.rounds):
        for name, steps in runs if i % 2 == 0 else runs[::-1]:
            times[name].append(_timed(steps["train"]))
    a, b = _median_ms(times["default"]), _median_ms(times["options"])
    print(f"{args.row} batch {args.batch} {extra}: default {a} ms, options {b} ms ({a / b:.3f}x)")


def authors(args) -> None:
    """The authors' training step and ours interleaved, with the minor page faults of each;
    ``--mallopt`` first raises glibc's mmap and trim thresholds to 1-2 GiB."""
    if args.mallopt:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 2**31 - 1)  # M_TRIM_THRESHOLD
    _, ours, frames, future = _network(args.row, args.batch)
    spec = bench.MODELS[args.row]
    torch.manual_seed(0)
    theirs_net = bench._AuthorsNet(args.authors, spec.base, dict(spec.config))
    theirs = bench._steps(theirs_net, frames, future, 10)
    for steps in (ours, theirs):
        steps["train"]()
    times: dict[str, list[float]] = {"authors": [], "ours": []}
    faults: dict[str, list[int]] = {"authors": [], "ours": []}
    for _ in range(args.rounds):
        for name, steps in (("authors", theirs), ("ours", ours)):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            times[name].append(_timed(steps["train"]))
            faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    t, o = _median_ms(times["authors"]), _median_ms(times["ours"])
    f = {name: statistics.median(v) for name, v in faults.items()}
    print(f"{args.row} batch {args.batch} mallopt={args.mallopt}: authors {t} ms, ours {o} ms "
          f"({t / o:.2f}x); minor faults a step {f}")  # fmt: skip


def layernorm(args) -> None:
    """Compiled (static shapes) F.layer_norm against two plain reductions, forward + backward."""

    def builtin(x, w, b):
        return torch.nn.functional.layer_norm(x, x.shape[-1:], w, b, 1e-5)

    def two_pass(x, w, b):
        d = x - x.mean(-1, keepdim=True)
        return d * torch.rsqrt((d * d).mean(-1, keepdim=True) + 1e-5) * w + b

    for shape in [(4096, 32), (1024, 64), (1024, 128), (16384, 32)]:
        x = torch.randn(*shape, requires_grad=True)
        w = torch.randn(shape[-1], requires_grad=True)
        b = torch.randn(shape[-1], requires_grad=True)
        g = torch.randn(shape)
        line = []
        for fn in (builtin, two_pass):
            compiled = torch.compile(fn, dynamic=False)

            def run(compiled=compiled, inputs=(x, w, b), g=g):
                torch.autograd.grad(compiled(*inputs), inputs, g)

            for _ in range(20):
                run()
            line.append(statistics.median(_timed(run) for _ in range(args.rounds)) * 1e6)
        print(f"{shape}: forward + backward F.layer_norm {line[0]:.1f} us, two reductions "
              f"{line[1]:.1f} us")  # fmt: skip


def warmup(args) -> None:
    """A new process's first inference and first training step (the compile warm-up, from the
    cache where it holds the graphs), and how AOTAutograd's cache served the graphs."""
    from torch._dynamo.utils import compile_times, counters

    _, steps, _, _ = _network(args.row, args.batch)
    profile = cProfile.Profile() if args.cprofile else None
    first = {}
    for kind in ("infer", "train"):
        if profile is not None:
            profile.enable()
        first[kind] = _timed(steps[kind])
        if profile is not None:
            profile.disable()
    aot = {k: v for k, v in counters["aot_autograd"].items() if k.startswith("autograd_cache")}
    print(f"{args.row} batch {args.batch}: first inference {first['infer']:.1f} s, first "
          f"training step {first['train']:.1f} s; AOTAutograd cache {aot}")  # fmt: skip
    if profile is not None:  # where the compile work goes (the profiler slows the tracing)
        print(compile_times(repr="str", aggregate=True))
        stats = pstats.Stats(profile).stats
        functions = sum(v[3] for k, v in stats.items() if k[2] == "wrapped_call_function")
        print(f"tracing autograd.Function calls (both steps): {functions:.1f} s")


def wrapper(args) -> None:
    """What the compiled steps' wrapper (``swinlstm._cacheable``) adds to a call: entering and
    leaving the AOTAutograd option it sets."""
    import torch._functorch.config as functorch_config

    def enter():
        with functorch_config.patch(autograd_cache_allow_custom_autograd_functions=True):
            pass

    for _ in range(1000):
        enter()
    per_call = statistics.median(_timed(enter) for _ in range(args.rounds))
    print(f"AOTAutograd option around a call: {per_call * 1e6:.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="probe", required=True)
    for name, fn in [("split", split), ("step", step), ("ddp", ddp), ("options", options),
                     ("authors", authors), ("layernorm", layernorm), ("warmup", warmup),
                     ("wrapper", wrapper)]:  # fmt: skip
        p = sub.add_parser(name, help=fn.__doc__.split("\n")[0])
        p.set_defaults(run=fn)
        if name not in ("layernorm", "wrapper"):
            p.add_argument("row", choices=sorted(bench.MODELS))
            p.add_argument("batch", type=int)
        p.add_argument("--rounds", type=int, default={"options": 15, "wrapper": 20000}.get(name, 9))
    sub.choices["step"].add_argument("--threads", type=int, default=2)
    sub.choices["ddp"].add_argument("--port", type=int, default=29533)
    sub.choices["options"].add_argument("inductor", help="Inductor options as JSON")
    sub.choices["authors"].add_argument("--authors", required=True, help="the authors' files")
    sub.choices["authors"].add_argument("--mallopt", action="store_true")
    sub.choices["warmup"].add_argument("--cprofile", action="store_true")
    args = parser.parse_args()
    if args.probe != "ddp":
        torch.set_num_threads(getattr(args, "threads", 2))
    args.run(args)


if __name__ == "__main__":
    main()
