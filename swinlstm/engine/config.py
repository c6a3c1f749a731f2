"""The typed run configuration: :class:`RunConfig` and its sections, the one table of settings.

Each setting is one dataclass field below; its metadata gives the flag name(s) (ours first, then
the spellings the authors' commands already use), the argparse options, the help text, and whether
a resumed run may change it (``resume``). ``swinlstm train`` builds its flags from this table.

A configuration is read from two forms (:meth:`RunConfig.from_dict`):

* nested (what a run writes into ``config.yaml`` and its checkpoints)::

    data: {dataset: movingmnist, short_len: 10, ...}
    model: {name: swinlstm-b, options: {window_size: 4, ...}}
    optim: {lr: 0.0001, ...}
    output: {print_freq: 1000, ...}
    hardware: {accelerator: auto, ...}

* flat, with the flag names as keys (the presets in ``configs/``, older ``config.yaml`` files and
  checkpoints): ``{dataset: movingmnist, model: swinlstm-b, window_size: 4, lr: 0.0001}``.

The model's options (``ModelConfig.options``) are the keyword arguments of its constructor
(``swinlstm.models.build_model``); those with a flag are listed in :data:`MODEL_OPTIONS`.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from swinlstm.errors import ConfigError
from swinlstm.metrics.core import DEFAULT_METRICS
from swinlstm.models import VARIANTS, list_models, resolve_model
from swinlstm.presets import find_preset

DATASETS = ("movingmnist", "kth", "taxibj", "human36m", "custom")
MODELS = tuple(list_models())  # the base models and their named variants (swinlstm-d-mmnist...)

# what a new run takes where its configuration is silent (img_size / img_channel: the dataset's)
RUN_DEFAULTS = {"dataset": "movingmnist", "short_len": 10, "out_len": 10}
DEFAULT_MODEL = "swinlstm-d"


def str2bool(value: str | bool) -> bool:
    """``True/true/1/yes/y/on`` -> True, ``False/false/0/no/n/off`` -> False, else an error."""
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in ("true", "1", "yes", "y", "on"):
        return True
    if v in ("false", "0", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (True/False, 1/0, yes/no), got {value!r}")


AUTO = "auto"


def str2auto(value: str | bool) -> bool | str:
    """``auto`` -> ``"auto"``; anything else as :func:`str2bool`."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    try:
        return str2bool(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected True, False or auto, got {value!r}") from None


def int_list(value: str) -> list[int]:
    """One list-flag token: ``"2"`` -> [2], ``"2,6"`` -> [2, 6]."""
    try:
        return [int(v) for v in str(value).replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers like 2 6 or 2,6, got {value!r}"
        ) from None


def flatten(values: Any) -> Any:
    """``[[2], [2, 6]]`` (the tokens of an ``nargs='+'`` :func:`int_list` flag) -> ``[2, 2, 6]``;
    anything that is not a list is returned as it is."""
    if not isinstance(values, (list, tuple)):
        return values
    out: list = []
    for v in values:
        out.extend(v if isinstance(v, (list, tuple)) else [v])
    return out


def setting(
    default: Any = None,
    help: str | None = None,
    *,
    flags: tuple[str, ...] = (),
    resume: bool = False,
    **cli: Any,
) -> Any:
    """One row of the table: a dataclass field with its flag(s), argparse options (``cli``),
    help and whether a resumed run may change it. Lists and dicts are copied per instance."""
    meta = {"flags": flags, "help": help, "resume": resume, "cli": cli}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    """The clips a run trains on. None fields are resolved by ``swinlstm.engine.train``:
    ``dataset`` movingmnist, ``short_len`` / ``out_len`` 10, ``img_size`` / ``img_channel`` the
    dataset's own, ``long_len`` LMC-Memory's 30 for memory models (at most the clip)."""

    dataset: str | None = setting(
        help="(a preset's or checkpoint's own, else movingmnist)", type=str.lower, choices=DATASETS
    )
    train_data_dir: str | None = setting(help="training data (file or folder)", resume=True)
    valid_data_dir: str | None = setting(help="validation data (file or folder)", resume=True)
    img_size: int | list[int] | None = setting(
        help="frame size: H (square) or H W (default: the dataset's own)", type=int, nargs="+"
    )
    img_channel: int | None = setting(
        help="channels of a frame, 1 grey, 3 RGB (default: the dataset's own)", type=int
    )
    short_len: int | None = setting(help="input frames", type=int)
    out_len: int | None = setting(help="predicted frames", type=int)
    long_len: int | None = setting(help="long-term frames (memory models)", type=int)
    data_options: dict[str, Any] = setting(
        {},
        "the dataset's own options, e.g. num_digits=[1,2] train_samples=2000",
        resume=True,  # laid over the recorded ones
        nargs="+",
        metavar="KEY=VALUE",
    )
    batch_size: int = setting(16, "clips per batch and process (16)", type=int)
    workers: int = setting(2, "data loading processes", resume=True, type=int)
    seed: int = setting(
        1234, "seeds the weights, the data order and generated clips (1234)", type=int
    )


@dataclass
class ModelConfig:
    """The network: its registry name and its constructor's keyword arguments (``options``;
    unset ones keep the model's defaults)."""

    name: str | None = setting(
        help="default swinlstm-d", flags=("--model",), resume=True, type=str.lower, choices=MODELS
    )
    options: dict[str, Any] = setting({}, resume=True)  # flags: MODEL_OPTIONS


@dataclass
class OptimConfig:
    lr: float = setting(1e-4, "Adam learning rate (1e-4)", type=float)
    weight_decay: float = setting(0.0, "Adam weight decay (0)", type=float)
    schedule: str = setting("none", "lr schedule", choices=("none", "cosine", "onecycle"))
    schedule_warmup: int = setting(0, "cosine: linear lr warm-up iterations", type=int)
    min_lr: float = setting(1e-6, "cosine: final lr (1e-6)", type=float)
    grad_clip: float = setting(0.0, "max gradient norm (0: off)", type=float)
    scheduled_sampling: bool = setting(
        False,
        "feed true frames with a decaying probability (ConvLSTM baseline; False)",
        type=str2bool,
    )
    sampling_stop_iter: int = setting(50000, "(50000)", type=int)
    sampling_changing_rate: float = setting(2e-5, "(2e-5)", type=float)
    iterations: int = setting(300000, "training iterations (300000)", resume=True, type=int)
    iterations_warmup: int = setting(
        5000, "memory models: iterations predicting only 10 frames (5000)", type=int
    )
    alignment_zero_grad: str = setting(
        "zeros",
        "memory models: gradients between the two steps zero-filled (PyTorch 1.6, the "
        "authors' published runs: Adam's momentum still moves frozen slots; default) or None "
        "(PyTorch >= 2: they stand still)",
        choices=("zeros", "none"),
    )


@dataclass
class OutputConfig:
    """Validation, checkpoints and progress."""

    print_freq: int = setting(
        1000, "validate + checkpoint every N iterations", resume=True, type=int
    )
    # Lightning's log_every_n_steps (metrics.csv / tensorboard loss); the SwinLSTM authors' flag
    log_every: int = setting(
        50, "log the loss every N iterations", flags=("--log_train",), type=int
    )
    valid_batches: int | None = setting(
        help="validation batches per process (all)", resume=True, type=int
    )
    valid_batch_size: int | None = setting(help="(--batch_size)", resume=True, type=int)
    valid_metrics: list[str] = setting(
        list(DEFAULT_METRICS),
        "metrics (mse mae ssim psnr); mse is always computed: it picks best.ckpt",
        resume=True,
        nargs="+",
    )
    protocol: str = setting("default", "metric protocol (default)")
    checkpoint_save_dir: str = setting(
        "./checkpoints", "output folder (./checkpoints)", resume=True
    )
    checkpoint_load_file: str | None = setting(
        help="last.ckpt to resume; model.safetensors or an authors' file to fine-tune", resume=True
    )
    checkpoint_load: bool | None = setting(
        help="LMC-Memory's flag: False = do not load --checkpoint_load_file (a new run, with "
        "warm-up), True = load it (needs the file); not given: --checkpoint_load_file decides",
        resume=True,
        type=str2bool,
    )
    checkpoint_every: float = setting(
        10.0,
        "also write last.ckpt every MINUTES, without validating (10; 0: off)",
        resume=True,
        type=float,
        metavar="MINUTES",
    )
    early_stop: int = setting(
        0,
        "stop after PATIENCE validations without a better validation MSE; best.ckpt is "
        "the result (0: off)",
        resume=True,
        type=int,
        metavar="PATIENCE",
    )
    resume: bool = setting(
        False,
        "continue from last.ckpt in --checkpoint_save_dir if there is one, else start "
        "(same as --checkpoint_load_file auto): a requeued job reruns the same command",
        resume=True,
        action="store_const",
        const=True,
    )
    progress: bool = setting(True, "progress bar (True)", resume=True, type=str2bool)
    logger: list[str] | None = setting(
        help="csv, tensorboard, wandb, mlflow: one or several (csv tensorboard; csv is the "
        "run's metrics.csv, always written)",
        resume=True,
        nargs="+",
        metavar="NAME",
    )


@dataclass
class HardwareConfig:
    """Lightning's meanings."""

    accelerator: str = setting("auto", "auto, cpu, gpu, cuda, mps (auto)", resume=True)
    devices: int | str = setting(1, "devices per node: 4, -1 (all), auto (1)", resume=True)
    num_nodes: int = setting(1, "machines (1)", resume=True, type=int)
    strategy: str = setting("auto", "auto, ddp, ddp_spawn, fsdp ... (auto)", resume=True)
    precision: str = setting(
        "32-true", "32-true, bf16-mixed, 16-mixed, 64-true (32-true)", resume=True
    )


@dataclass(frozen=True)
class ModelOption:
    """A model constructor argument with a flag: its flag(s), argparse options, help and the
    model family it belongs to (``swin`` / ``conv``; None: any model)."""

    flags: tuple[str, ...]
    cli: dict[str, Any]
    help: str | None = None
    family: str | None = None


_INTS = {"type": int_list, "nargs": "+"}
MODEL_OPTIONS: dict[str, ModelOption] = {
    "memory_size": ModelOption(
        ("--memory_size",), {"type": int}, "LMC memory slots; 0 = no memory"
    ),
    "patch_size": ModelOption(("--patch_size",), {"type": int}),
    "embed_dim": ModelOption(("--embed_dim",), {"type": int}, None, "swin"),
    "depths": ModelOption(("--depths",), _INTS, "SwinLSTM-B blocks", "swin"),
    "depths_down": ModelOption(("--depths_down",), _INTS, "SwinLSTM-D down path", "swin"),
    "depths_up": ModelOption(("--depths_up",), _INTS, "SwinLSTM-D up path", "swin"),
    "num_heads": ModelOption(("--heads_number", "--num_heads"), _INTS, None, "swin"),
    "window_size": ModelOption(("--window_size",), {"type": int}, None, "swin"),
    "mlp_ratio": ModelOption(("--mlp_ratio",), {"type": float}, None, "swin"),
    "drop_rate": ModelOption(("--drop_rate",), {"type": float}, None, "swin"),
    "attn_drop_rate": ModelOption(("--attn_drop_rate",), {"type": float}, None, "swin"),
    "drop_path_rate": ModelOption(("--drop_path_rate",), {"type": float}, None, "swin"),
    "num_hidden": ModelOption(("--num_hidden",), _INTS, "ConvLSTM hidden channels", "conv"),
    "filter_size": ModelOption(("--filter_size",), {"type": int}, "ConvLSTM kernel size", "conv"),
    "final_sigmoid": ModelOption(
        ("--final_sigmoid",), {"type": str2bool}, "lmc-convlstm output sigmoid"
    ),
    "checkpointing": ModelOption(
        ("--checkpointing",), {"type": str2bool}, "activation checkpointing", "swin"
    ),
    "compile": ModelOption(
        ("--compile",),
        {"type": str2auto},
        "torch.compile the recurrence's steps: True, False or auto (train's default: on for long "
        "runs of small SwinLSTMs on the CPU, see swinlstm.engine.compiling)",
        "swin",
    ),
}

SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "optim": OptimConfig,
    "output": OutputConfig,
    "hardware": HardwareConfig,
}
GROUPS = {  # --help's group titles
    "data": "data",
    "model": "model",
    "optim": "optimisation",
    "output": "validation and outputs",
    "hardware": "hardware (Lightning's meanings)",
}


@dataclass(frozen=True)
class Setting:
    """A row of the table as the CLI sees it: ``section.name`` and its flags."""

    section: str
    name: str
    flags: tuple[str, ...]
    help: str | None
    resume: bool
    cli: dict[str, Any]
    default: Any

    @property
    def dest(self) -> str:
        """The flat key (flag name without dashes) of the setting."""
        return self.flags[0].lstrip("-")


def _settings() -> list[Setting]:
    rows = []
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            default = (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            )
            rows.append(
                Setting(
                    section,
                    f.name,
                    f.metadata["flags"] or (f"--{f.name}",),
                    f.metadata["help"],
                    f.metadata["resume"],
                    f.metadata["cli"],
                    default,
                )
            )
    return rows


SETTINGS: list[Setting] = _settings()

# flat key -> (section, field); flat keys are the flags' names and the fields' own names
# (``model`` / ``model_config``: older files' names of model.name / model.options)
FLAT_KEYS: dict[str, tuple[str, str]] = {}
for _s in SETTINGS:
    if _s.section != "model":
        FLAT_KEYS.setdefault(_s.name, (_s.section, _s.name))
    if _s.name != "options":  # the options' flags: MODEL_OPTIONS
        FLAT_KEYS[_s.dest] = (_s.section, _s.name)
FLAT_KEYS["model_config"] = ("model", "options")
# flat key -> model option (the options' flags, and their own names)
OPTION_KEYS: dict[str, str] = {}
for _key, _opt in MODEL_OPTIONS.items():
    OPTION_KEYS[_key] = _key
    for _flag in _opt.flags:
        OPTION_KEYS[_flag.lstrip("-")] = _key
del _s, _key, _opt, _flag


def is_nested(data: dict[str, Any]) -> bool:
    """True for the nested form (every key a section holding a mapping)."""
    return bool(data) and all(k in SECTIONS and isinstance(v, dict) for k, v in data.items())


def nested_form(data: dict[str, Any], source: str | None = None) -> dict[str, dict[str, Any]]:
    """``data`` (nested or flat) as ``{section: {field: value}}`` holding only what it gives.

    Unknown keys raise :class:`ConfigError` naming them (and ``source``, the file)."""
    out: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    unknown: list[str] = []
    if is_nested(data):
        for section, values in data.items():
            names = {f.name for f in dataclasses.fields(SECTIONS[section])}
            for key, value in values.items():
                if key in names:
                    out[section][key] = value
                else:
                    unknown.append(f"{section}.{key}")
    else:
        for key, value in data.items():
            if value is None:  # unset
                continue
            if key in OPTION_KEYS:
                out["model"].setdefault("options", {})[OPTION_KEYS[key]] = value
            elif key in FLAT_KEYS:
                section, name = FLAT_KEYS[key]
                if name == "options":  # model_config: the flags' options win
                    out["model"]["options"] = {**(value or {}), **out["model"].get("options", {})}
                else:
                    out[section][name] = value
            else:
                unknown.append(str(key))
    if unknown:
        keys = ", ".join(sorted(unknown))
        raise ConfigError(
            f"{source}: unknown keys {keys}" if source else f"unknown training settings: {keys}"
        )
    return out


def flat_form(nested: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A nested form (:func:`nested_form`) with the flags' names as keys; model options without
    a flag stay under ``model_config``."""
    out: dict[str, Any] = {}
    for row in SETTINGS:
        if row.name in nested.get(row.section, {}) and row.name != "options":
            out[row.dest] = nested[row.section][row.name]
    options = dict(nested.get("model", {}).get("options") or {})
    for key in [k for k in options if k in MODEL_OPTIONS]:
        out[MODEL_OPTIONS[key].flags[0].lstrip("-")] = options.pop(key)
    if options:
        out["model_config"] = options
    return out


def data_options_of(value: Any) -> dict[str, Any]:
    """``--data_options k=v ...`` (values read as YAML) or a mapping -> dict."""
    import yaml

    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    out: dict[str, Any] = {}
    for item in value:
        key, sep, text = str(item).partition("=")
        if not sep or not key:
            raise ConfigError(f"--data_options takes KEY=VALUE items, got {item!r}")
        out[key.strip()] = yaml.safe_load(text)
    return out


def _img_size(size: Any) -> int | list[int] | None:
    if size is None or isinstance(size, int):
        return size
    size = flatten(list(size))
    if len(size) == 1:
        return size[0]
    if len(size) == 2:
        return [size[0], size[1]]
    raise ConfigError(f"--img_size takes H or H W, got {size}")


def _devices(value: Any) -> int | str:
    text = str(value)
    try:
        return int(text)
    except ValueError:
        return text


def model_family(name: str) -> str:
    """The family of a model name, as :class:`ModelOption` names it: ``swin`` for the SwinLSTMs
    (their variants included), ``conv`` for the others."""
    return "swin" if name.startswith("swinlstm") else "conv"


def _check_family(name: str, options: dict[str, Any]) -> None:
    """The options of the other model family are an error naming their flags."""
    family = model_family(name)
    wrong = [
        k for k in options if k in MODEL_OPTIONS and MODEL_OPTIONS[k].family not in (None, family)
    ]
    if wrong:
        flags = sorted(MODEL_OPTIONS[k].flags[0].lstrip("-") for k in wrong)
        raise ConfigError(f"--{' --'.join(flags)} do not apply to model {name}")


def _resolve_variant(model: ModelConfig, data: DataConfig) -> tuple[str, dict[str, Any]]:
    """A named variant (``swinlstm-d-mmnist``) as its base model with the variant's published
    options under the given ones, so that everything downstream (checkpoints, resume, the
    authors' layouts) sees one base name. A frame size or channel count the data section gives
    wins over the variant's."""
    if model.name not in VARIANTS:
        return model.name, model.options
    base, published = resolve_model(model.name)
    if data.img_size is not None:
        published.pop("img_size", None)
    if data.img_channel is not None:
        published.pop("in_chans", None)
    return base, {**published, **model.options}


@dataclass
class RunConfig:
    """Everything a run needs, by section (see the module docstring for its two forms)."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None) -> RunConfig:
        """A run configuration from the nested or the flat form (None values: unset)."""
        given = nested_form(data, source)
        sections = {}
        for section, values in given.items():
            values = {k: v for k, v in values.items() if v is not None}
            sections[section] = SECTIONS[section](**values)
        cfg = cls(**sections)
        cfg.data.img_size = _img_size(cfg.data.img_size)
        cfg.data.data_options = data_options_of(cfg.data.data_options)
        cfg.hardware.devices = _devices(cfg.hardware.devices)
        cfg.model.options = {k: flatten(v) for k, v in cfg.model.options.items()}
        if cfg.model.name is not None:
            cfg.model.name = str.__str__(cfg.model.name)  # a plain str (YAML, hyper-parameters)
            cfg.model.name, cfg.model.options = _resolve_variant(cfg.model, cfg.data)
            _check_family(cfg.model.name, cfg.model.options)
        return cfg

    @classmethod
    def of(cls, config: RunConfig | dict[str, Any]) -> RunConfig:
        """``config`` itself, or one read from a mapping (nested or flat)."""
        return config if isinstance(config, RunConfig) else cls.from_dict(config)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The nested form (plain types: what ``config.yaml`` and checkpoints hold)."""
        return plain(dataclasses.asdict(self))

    def copy(self) -> RunConfig:
        return copy.deepcopy(self)

    def validate(self) -> None:
        """Raise ConfigError naming the flag for settings no run can use (None: resolved later)."""
        d, o = self.data, self.optim
        values = {
            "short_len": d.short_len,
            "out_len": d.out_len,
            "batch_size": d.batch_size,
            "iterations": o.iterations,
            "print_freq": self.output.print_freq,
            "num_nodes": self.hardware.num_nodes,
        }
        for name, value in values.items():
            if value is not None and int(value) < 1:
                raise ConfigError(f"--{name} must be >= 1, got {value}")
        long_len = d.long_len or 0
        if long_len < 0 or o.iterations_warmup < 0 or d.workers < 0:
            raise ConfigError("--long_len, --iterations_warmup and --workers must be >= 0")
        if None not in (d.short_len, d.out_len) and long_len > d.short_len + d.out_len:
            raise ConfigError(
                f"--long_len {d.long_len} is longer than the clip it is taken from: "
                f"--short_len + --out_len = {d.short_len + d.out_len}"
            )
        if o.lr <= 0:
            raise ConfigError(f"--lr must be > 0, got {o.lr}")
        out = self.output
        if out.valid_batches is not None and out.valid_batches < 0:
            raise ConfigError(f"--valid_batches must be >= 0, got {out.valid_batches}")
        if out.early_stop < 0:
            raise ConfigError(
                f"--early_stop must be >= 0 validations (0: off), got {out.early_stop}"
            )
        if not out.checkpoint_every >= 0:
            raise ConfigError(
                f"--checkpoint_every must be >= 0 minutes (0: off), got {out.checkpoint_every}"
            )
        from swinlstm.engine.loggers import check_logger_names  # Lightning: not at --help

        check_logger_names(out.logger)


def model_options_for_data(options: dict[str, Any], data: DataConfig) -> dict[str, Any]:
    """The model's options with its frame (``img_size`` / ``in_chans``) the data's, unless the
    options give their own: the rule "build the model for the data's frames"."""
    out = dict(options)
    out.setdefault("img_size", data.img_size)
    out.setdefault("in_chans", data.img_channel)
    return out


def load_yaml(path: str) -> dict[str, Any]:
    """A YAML preset or ``config.yaml`` as a mapping (ConfigError naming the file otherwise)."""
    import yaml

    path = str(find_preset(path))  # the file, else a packaged preset of that name
    with open(path) as f:
        try:
            data = yaml.safe_load(f) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of flag names to values, got {type(data).__name__}"
        )
    return data


def plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
