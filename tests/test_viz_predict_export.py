"""Pictures, ``swinlstm predict`` and ``swinlstm export`` on a tiny registered toy model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from evalcli_helpers import ToyPredictor  # noqa: F401  (registers "toy-eval")
from PIL import Image

from swinlstm import viz
from swinlstm.cli.main import run
from swinlstm.data.common import read_clip, to_tensor_clip
from swinlstm.engine.checkpoint import save_model
from swinlstm.errors import ConfigError
from swinlstm.models import build_model
from tests.data_writers import write_avi


@pytest.fixture()
def toy_ckpt(tmp_path):
    torch.manual_seed(0)
    model = build_model("toy-eval", img_size=16, in_chans=1)
    save_model(model, tmp_path / "ckpt")
    return tmp_path / "ckpt", model.eval()


def gif_frames(path) -> int:
    with Image.open(path) as im:
        assert im.format == "GIF"
        return im.n_frames


# ----- viz ------------------------------------------------------------------------------------
def test_to_uint8_grey_rgb_and_other_channels():
    x = torch.tensor([0.0, 0.5, 1.0, 2.0]).reshape(1, 1, 2, 2)
    assert viz.to_uint8(x).tolist() == [[[0, 128], [255, 255]]]
    assert viz.to_uint8(torch.rand(2, 3, 4, 5)).shape == (2, 4, 5, 3)
    assert viz.to_uint8(torch.rand(2, 2, 4, 5)).shape == (2, 4, 10)  # channels side by side
    with pytest.raises(ValueError, match="NaN"):
        viz.to_uint8(torch.full((1, 4, 4), float("nan")))


def test_strip_gif_has_one_frame_per_time_step_even_if_frames_repeat(tmp_path):
    same = torch.zeros(3, 1, 8, 8)  # identical frames: GIF writers would merge them
    path = viz.save_strip_gif(
        tmp_path / "a.gif", same, torch.zeros(4, 1, 8, 8), same[:1].repeat(4, 1, 1, 1)
    )
    assert gif_frames(path) == 7
    with Image.open(path) as im:
        assert im.size == (3 * 8 + 2 * viz.SEPARATOR, 8 + viz.BAR_HEIGHT)


def test_strip_frames_panels_show_input_then_truth_and_prediction():
    inp, gt, pr = (
        torch.full((2, 1, 4, 4), 0.2),
        torch.full((3, 1, 4, 4), 0.6),
        torch.ones(3, 1, 4, 4),
    )
    f = viz.strip_frames(inp, gt, pr)
    assert f.shape[0] == 5
    sep = viz.SEPARATOR
    assert (f[0, :4, :4] == 51).all()
    assert (f[0, :4, 4 + sep : 8 + sep] == 0).all()  # nothing forecast yet
    assert (f[3, :4, 4 + sep : 8 + sep] == 153).all() and (f[3, :4, 8 + 2 * sep :] == 255).all()


def test_comparison_grid_rows_and_error_colour(tmp_path):
    gt = [torch.zeros(3, 1, 4, 4), torch.zeros(3, 1, 4, 4)]
    pr = [torch.zeros(3, 1, 4, 4), torch.ones(3, 1, 4, 4)]
    g = viz.comparison_grid(gt, pr)
    block = 3 * 4 + 2 * viz.SEPARATOR
    assert g.shape == (2 * block + 2 * viz.SEPARATOR, 3 * 4 + 2 * viz.SEPARATOR, 3)
    err_row_clip0 = g[8 + 2 * viz.SEPARATOR : 12 + 2 * viz.SEPARATOR, :4]
    err_row_clip1 = g[block + 2 * viz.SEPARATOR + 8 + 2 * viz.SEPARATOR :][:4, :4]
    assert err_row_clip0.sum() < err_row_clip1.sum()  # zero error dark, full error bright
    path = viz.save_comparison(tmp_path / "c.png", gt, pr)
    assert Image.open(path).format == "PNG"
    with pytest.raises(ValueError, match="as many"):
        viz.comparison_grid(gt, pr[:1])


# ----- reading inputs ------------------------------------------------------------------------
def moving_square(t: int, size: int = 32) -> np.ndarray:
    """uint8 (t, size, size, 3): a bright square moving right."""
    frames = np.zeros((t, size, size, 3), np.uint8)
    for k in range(t):
        frames[k, 8:16, 2 + k : 10 + k] = 220
    return frames


def test_read_clip_video_folder_npy_agree(tmp_path):
    import cv2

    frames = moving_square(12)
    write_avi(tmp_path / "clip.avi", frames)
    (tmp_path / "frames").mkdir()
    for k, f in enumerate(frames):  # names sort wrongly as text: natural order is needed
        cv2.imwrite(str(tmp_path / "frames" / f"frame_{k}.png"), f)
    np.save(tmp_path / "clip.npy", frames[..., 0])
    video = read_clip(tmp_path / "clip.avi")
    folder = read_clip(tmp_path / "frames")
    array = read_clip(tmp_path / "clip.npy")
    assert video.shape == folder.shape == (12, 32, 32, 3) and array.shape == (12, 32, 32, 1)
    np.testing.assert_array_equal(folder[..., :1], array)  # natural order kept
    assert np.abs(video.astype(float) - folder).mean() < 8  # MJPG is lossy
    fitted = to_tensor_clip(video, (16, 16), 1).numpy()
    assert fitted.shape == (12, 1, 16, 16) and fitted.dtype == np.float32
    assert 0 <= fitted.min() and fitted.max() <= 1
    # area resizing: the 8x8 square of value 220 becomes a 4x4 one
    small = to_tensor_clip(folder, (16, 16), 1).numpy()
    np.testing.assert_allclose(small[0, 0, 4:8, 1:5], 220 / 255, atol=1e-2)


def test_read_npy_layouts_and_errors(tmp_path):
    x = np.random.rand(5, 3, 8, 8).astype(np.float32)
    np.save(tmp_path / "tchw.npy", x)
    np.testing.assert_array_equal(read_clip(tmp_path / "tchw.npy"), x.transpose(0, 2, 3, 1))
    np.save(tmp_path / "many.npy", np.zeros((20, 100, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="one clip"):
        read_clip(tmp_path / "many.npy")
    np.save(tmp_path / "range.npy", np.full((5, 8, 8), 3.0, np.float32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        read_clip(tmp_path / "range.npy")
    (tmp_path / "x.txt").write_text("no")
    with pytest.raises(ValueError, match="unsupported input"):
        read_clip(tmp_path / "x.txt")


# ----- predict -------------------------------------------------------------------------------
def test_predict_from_avi_writes_pngs_gif_npy_and_stream_matches(tmp_path, toy_ckpt, capsys):
    ckpt, model = toy_ckpt
    write_avi(tmp_path / "clip.avi", moving_square(12))
    outs = {}
    for mode in ("batch", "stream"):
        argv = ["predict", "--checkpoint", str(ckpt), "--input", str(tmp_path / "clip.avi")]
        argv += ["--out_len", "5", "--short_len", "6", "--output", str(tmp_path / mode)]
        assert run(argv + (["--stream"] if mode == "stream" else [])) == 0
        out = tmp_path / mode
        assert sorted(p.name for p in out.glob("pred_*.png")) == [
            f"pred_{t:02d}.png" for t in range(5)
        ]
        assert len(list(out.glob("input_*.png"))) == 6
        assert Image.open(out / "pred_00.png").size == (16, 16)
        assert gif_frames(out / "prediction.gif") == 11
        outs[mode] = np.load(out / "prediction.npy")
        assert outs[mode].shape == (5, 1, 16, 16)
    np.testing.assert_allclose(outs["stream"], outs["batch"], atol=1e-6)
    assert "streamed through step" in capsys.readouterr().out


def streamed(model, x, out_len):
    """The frames ``model.forecast`` yields, stacked (B, out_len, C, H, W), checking that they
    come one at a time."""
    frames = model.forecast(x, out_len)
    first = next(frames)
    assert first.shape == (x.shape[0], *x.shape[2:])
    return torch.stack([first, *frames], dim=1)


def test_forecast_stream_equals_predict(toy_ckpt):
    _, model = toy_ckpt
    x = torch.rand(2, 4, 1, 16, 16)
    with torch.inference_mode():
        torch.testing.assert_close(streamed(model, x, 3), model.predict(x, 3))


@pytest.mark.parametrize(
    "name, config",
    [
        ("convlstm", dict(patch_size=4, num_hidden=[8, 8], filter_size=3)),
        ("lmc-convlstm", dict(memory_size=4, hidden=8, slot_dim=16)),  # context from the memory
        ("swinlstm-b", dict(embed_dim=8, depths=[2], num_heads=[2], window_size=4)),
        ("swinlstm-d", dict(embed_dim=8, depths_down=[2], depths_up=[2], num_heads=[2])),
    ],
)
def test_stream_equals_predict_for_real_models(name, config):
    """``forecast`` is ``forward``'s recurrence: the same frames bit for bit."""
    torch.manual_seed(0)
    model = build_model(name, img_size=16, in_chans=1, **config).eval()
    x = torch.rand(2, 6, 1, 16, 16)
    with torch.inference_mode():
        torch.testing.assert_close(streamed(model, x, 3), model.predict(x, 3), rtol=0, atol=0)
        assert torch.equal(streamed(model, x, 3), model(x, 3)[:, -3:])


def test_forecast_refuses_bad_frames_and_out_len_before_the_first_frame(toy_ckpt):
    _, model = toy_ckpt
    with pytest.raises(ConfigError, match="out_len must be an integer >= 1"):
        model.forecast(torch.rand(1, 2, 1, 16, 16), 0)  # at the call, not at the first next()
    with pytest.raises(ConfigError, match=r"frames are 8x8 but the model was built for"):
        model.forecast(torch.rand(1, 2, 1, 8, 8), 2)


def test_predict_too_short_input_is_one_line_exit_2(tmp_path, toy_ckpt, capsys):
    ckpt, _ = toy_ckpt
    np.save(tmp_path / "c.npy", np.zeros((3, 16, 16), np.uint8))
    argv = ["predict", "--checkpoint", str(ckpt), "--input", str(tmp_path / "c.npy")]
    assert run(argv + ["--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds 3 frames" in err and "--short_len 10" in err


def test_predict_missing_checkpoint_and_input(tmp_path, toy_ckpt, capsys):
    ckpt, _ = toy_ckpt
    argv = ["predict", "--input", str(tmp_path / "none.avi"), "--output", str(tmp_path / "o")]
    assert run(argv + ["--checkpoint", str(tmp_path / "nope.ckpt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert run(argv + ["--checkpoint", str(ckpt)]) == 2
    assert "--input not found" in capsys.readouterr().err


# ----- export --------------------------------------------------------------------------------
def test_export_onnx_parity(tmp_path, toy_ckpt, capsys):
    import onnx

    ckpt, model = toy_ckpt
    out = tmp_path / "toy.onnx"
    argv = ["export", "--checkpoint", str(ckpt), "--onnx", str(out), "--short_len", "4"]
    assert run(argv + ["--out_len", "3"]) == 0
    assert "max abs difference" in capsys.readouterr().out
    graph = onnx.load(str(out))
    onnx.checker.check_model(graph)
    from swinlstm.engine.export import onnx_parity

    assert onnx_parity(model, out, 4, 3, batch_size=3) <= 1e-4  # dynamic batch axis


MEMORY_EXPORTS = {
    "lmc-convlstm": dict(img_size=(12, 20), hidden=8, num_layers=1),  # read-out resized too
    "convlstm": dict(img_size=16, patch_size=4, num_hidden=[8], filter_size=3),
    "swinlstm-b": dict(img_size=16, embed_dim=8, depths=[2], num_heads=[2], window_size=4),
    "swinlstm-d": dict(
        img_size=16, embed_dim=8, depths_down=[2, 2], depths_up=[2, 2], num_heads=[2, 4]
    ),
}


def export_and_check(ckpt, capsys) -> None:
    """``swinlstm export`` of the checkpoint ``ckpt`` (2 -> 2 frames): the command checks
    onnxruntime against PyTorch on a batch of 2 (the graph was traced at batch 1)."""
    argv = ["export", "--checkpoint", str(ckpt), "--onnx", str(ckpt.parent / "m.onnx")]
    argv += ["--short_len", "2", "--out_len", "2", "--tolerance", "1e-5"]
    assert run(argv) == 0, capsys.readouterr().err
    assert "max abs difference" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(MEMORY_EXPORTS))
def test_export_memory_models_onnx_parity(tmp_path, name, capsys):
    torch.manual_seed(0)
    model = build_model(name, in_chans=1, memory_size=4, slot_dim=16, **MEMORY_EXPORTS[name])
    save_model(model, tmp_path / "ckpt")
    export_and_check(tmp_path / "ckpt", capsys)


def test_export_and_loading_ignore_a_recorded_compile_true(tmp_path, capsys):
    from swinlstm.cli.loading import checkpoint_model
    from swinlstm.cli.main import build_parser

    torch.manual_seed(0)
    model = build_model("swinlstm-b", in_chans=1, **MEMORY_EXPORTS["swinlstm-b"])
    save_model(model, tmp_path / "ckpt")
    meta_path = tmp_path / "ckpt" / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["config"]["compile"] = True  # what a run trained with --compile True records
    meta_path.write_text(json.dumps(meta))
    argv = ["export", "--checkpoint", str(tmp_path / "ckpt"), "--onnx", "x.onnx"]
    loaded, info = checkpoint_model(build_parser().parse_args(argv))
    assert loaded.compile is False and info["config"]["compile"] is True
    export_and_check(tmp_path / "ckpt", capsys)


def test_export_failing_parity_removes_the_graph_and_says_so(
    tmp_path, toy_ckpt, capsys, monkeypatch
):
    import swinlstm.engine.export as export

    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(export, "onnx_parity", lambda *a, **k: 0.5)
    ckpt, _ = toy_ckpt
    out = tmp_path / "toy.onnx"
    argv = ["export", "--checkpoint", str(ckpt), "--onnx", str(out), "--short_len", "4"]
    assert run(argv + ["--out_len", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "differs from PyTorch by 5.00e-01" in err
    assert f"{out} removed" in err and not out.exists()


def test_export_rejects_wrong_suffix(tmp_path, toy_ckpt, capsys):
    ckpt, _ = toy_ckpt
    assert run(["export", "--checkpoint", str(ckpt), "--onnx", str(tmp_path / "x.pt")]) == 2
    assert ".onnx" in capsys.readouterr().err


def test_model_json_roundtrip_is_plain_json(toy_ckpt):
    ckpt, _ = toy_ckpt
    assert json.loads((ckpt / "model.json").read_text())["model"] == "toy-eval"


def test_export_opset_too_old_is_one_line_without_graph_dump(tmp_path, capfd):
    torch.manual_seed(0)
    save_model(build_model("swinlstm-b", in_chans=1, **MEMORY_EXPORTS["swinlstm-b"]), tmp_path)
    argv = ["export", "--checkpoint", str(tmp_path), "--onnx", str(tmp_path / "m.onnx")]
    assert run(argv + ["--short_len", "2", "--out_len", "1", "--opset", "13"]) == 2
    out, err = capfd.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1, (out[:300], err)
    assert "--opset 13 is too old" in err and "needs opset >= 14" in err
