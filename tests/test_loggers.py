"""``--logger``: every logger records the configuration, train loss, learning rate and validation
metrics, for real and offline (W&B's local run folder, an MLflow file store); one line when a
chosen logger's package is missing."""

from __future__ import annotations

import csv
import importlib.util
import json
import struct
from pathlib import Path

import pytest
from train_helpers import ToyClips, toy_config

from swinlstm.cli.main import run
from swinlstm.engine import loggers as loggers_module
from swinlstm.engine.loggers import build_loggers, check_logger_names, logger_callbacks
from swinlstm.engine.train import run_training
from swinlstm.errors import ConfigError

HAS = {name: importlib.util.find_spec(name) is not None for name in ("wandb", "mlflow")}
HAS["tensorboard"] = importlib.util.find_spec("tensorboard") is not None
ALL = [name for name in ("tensorboard", "wandb", "mlflow") if HAS[name]]


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """One toy run (4 iterations, validations at 2 and 4) with every installed logger."""
    tmp = tmp_path_factory.mktemp("loggers")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_DIR", str(tmp / "wandb_dir"))
        mp.setenv("WANDB_CONSOLE", "off")
        mp.setenv("MLFLOW_TRACKING_URI", (tmp / "mlruns").as_uri())
        mp.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        out = tmp / "run"
        run_training(toy_config(out, logger=["csv", *ALL]), ToyClips(8), ToyClips(5))
    return tmp, out


def test_csv_is_written_with_any_logger(logged):
    _, out = logged
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["iteration"]) for r in rows] == [2, 4]
    assert {"train_loss", "lr", "mse"} <= set(rows[0])


@pytest.mark.skipif(not HAS["tensorboard"], reason="tensorboard is not installed")
def test_tensorboard_records_config_loss_lr_and_validation(logged):
    import yaml
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, out = logged
    hparams = yaml.safe_load(open(out / "tensorboard" / "hparams.yaml"))
    assert hparams["model"]["name"] == "toy" and hparams["optim"]["iterations"] == 4
    assert hparams["data"]["batch_size"] == 2
    events = EventAccumulator(str(out / "tensorboard")).Reload()
    assert {"loss", "lr-Adam", "val/mse"} <= set(events.Tags()["scalars"])
    assert [e.value for e in events.Scalars("lr-Adam")][-1] == pytest.approx(1e-2)
    assert [e.step for e in events.Scalars("val/mse")] == [1, 3]  # Lightning's step: iteration - 1


def _wandb_records(path: Path):
    """The protobuf records of a W&B ``run-*.wandb`` file (a LevelDB-style log: 32 KiB blocks of
    chunks with a 7-byte header crc32 / length / type; the file starts with a 7-byte header)."""
    from wandb.proto import wandb_internal_pb2

    data, block, header = path.read_bytes(), 32768, 7
    assert data[:4] == b":W&B"
    pos, record = header, b""
    while pos + header <= len(data):
        if block - pos % block < header:  # the block's padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + header])
        if kind == 0:  # zero padding
            pos += block - pos % block
            continue
        chunk = data[pos + header : pos + header + length]
        pos += header + length
        record = chunk if kind in (1, 2) else record + chunk  # FULL / FIRST, MIDDLE / LAST
        if kind in (1, 4):
            message = wandb_internal_pb2.Record()
            message.ParseFromString(record)
            yield message


@pytest.mark.skipif(
    not HAS["wandb"], reason="wandb is not installed: pip install 'swinlstm[wandb]'"
)
def test_wandb_offline_run_folder_records_config_loss_lr_and_validation(logged):
    tmp, out = logged
    (path,) = (tmp / "wandb_dir").glob("wandb/offline-run-*/run-*.wandb")
    config, history = {}, {}
    for record in _wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "config":
            config.update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                history.setdefault(key, []).append(json.loads(item.value_json))
    assert config["model"]["name"] == "toy" and config["optim"]["iterations"] == 4
    assert config["model"]["options"] == {"img_size": 16, "in_chans": 1}
    assert "model_name" not in config  # the resolved configuration is the one record
    assert {"loss", "lr-Adam", "val/mse", "val/ssim"} <= set(history)
    assert history["lr-Adam"][-1] == pytest.approx(1e-2)
    assert len(history["val/mse"]) == 2
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert history["val/mse"] == pytest.approx([float(r["mse"]) for r in rows], rel=1e-5)


@pytest.mark.skipif(
    not HAS["mlflow"], reason="mlflow is not installed: pip install 'swinlstm[mlflow]'"
)
def test_mlflow_file_store_records_config_loss_lr_and_validation(logged):
    tmp, out = logged
    (run_dir,) = [p.parent for p in (tmp / "mlruns").glob("*/*/params")]
    params = run_dir / "params"
    assert (params / "model" / "name").read_text() == "toy"
    assert (params / "optim" / "iterations").read_text() == "4"
    assert (params / "model" / "options" / "img_size").read_text() == "16"
    assert not (params / "model_name").exists()  # the resolved configuration is the one record

    def values(name: str) -> list[float]:  # lines "timestamp value step"
        return [
            float(line.split()[1])
            for line in (run_dir / "metrics" / name).read_text().split("\n")
            if line
        ]

    assert values("loss") and values("lr-Adam")[-1] == pytest.approx(1e-2)
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert values("val/mse") == pytest.approx([float(r["mse"]) for r in rows], rel=1e-5)
    assert (run_dir / "tags" / "mlflow.runName").read_text() == "run"


def test_default_is_tensorboard_where_installed_and_nothing_else(tmp_path, monkeypatch):
    made = build_loggers(None, tmp_path, {"model": "toy"})
    assert [type(x).__name__ for x in made] == (["TensorBoardLogger"] if HAS["tensorboard"] else [])
    monkeypatch.setattr(loggers_module, "_installed", lambda name: False)
    assert build_loggers(None, tmp_path, {}) == []  # no tensorboard: silently none, as before
    assert build_loggers(["csv"], tmp_path, {}) == []  # csv: the run's own metrics.csv
    assert logger_callbacks([]) == []


@pytest.mark.parametrize("name", ["tensorboard", "wandb", "mlflow"])
def test_a_chosen_logger_without_its_package_is_one_line(name, monkeypatch):
    monkeypatch.setattr(loggers_module, "_installed", lambda n: n != name)
    with pytest.raises(ConfigError) as err:
        check_logger_names(["csv", name])
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"--logger {name} needs the ")
    assert message.endswith(f"pip install 'swinlstm[{name}]'")


def test_wandb_missing_message_is_exact(monkeypatch):
    monkeypatch.setattr(loggers_module, "_installed", lambda n: n != "wandb")
    with pytest.raises(
        ConfigError,
        match=r"^--logger wandb needs the wandb package: pip install 'swinlstm\[wandb\]'$",
    ):
        build_loggers(["wandb"], ".", {})


@pytest.mark.parametrize("names", [["nope"], ["csv", "comet"], []])
def test_unknown_or_no_logger_names_are_refused(names):
    with pytest.raises(
        ConfigError, match="--logger takes one or several of csv tensorboard wandb mlflow"
    ):
        check_logger_names(names)


def test_names_are_deduplicated_and_a_string_is_one_name():
    assert check_logger_names(["csv", "csv"]) == ("csv",)
    assert check_logger_names("csv") == ("csv",)


def test_cli_refuses_a_bad_logger_before_training(tmp_path, capsys):
    code = run(["train", "--logger", "nope", "--checkpoint_save_dir", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--logger takes one or several of" in err[0]
    assert not (tmp_path / "x").exists()


def test_cli_logger_flag_reaches_the_config():
    from swinlstm.cli.main import build_parser
    from swinlstm.cli.train import config_from_args

    args = build_parser().parse_args(["train", "--logger", "csv", "tensorboard"])
    assert config_from_args(args).output.logger == ["csv", "tensorboard"]
    assert config_from_args(build_parser().parse_args(["train"])).output.logger is None
