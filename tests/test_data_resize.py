"""Frames at the sizes users have, larger than the model, through every loader and ``predict``.

Every test writes its own files (seconds) and compares the resized pixels with
:func:`reference_resize`, an exact numpy resize written from the definitions: per axis the mean of
the source pixels each output pixel covers (partly covered ones by their share) when the axis
shrinks, bilinear with aligned pixel centres when it grows. Tolerances: 8-bit frames within one
level (1/255: the result is rounded to uint8 and cv2's bilinear uses 11-bit fixed point, measured
at most 0.72 levels), 16-bit within one 16-bit level (1/65535), float32 within 1e-5.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from swinlstm.cli.main import run
from swinlstm.data import build_datasets
from swinlstm.data.common import read_clip, read_frames, resize_frames, to_tensor_clip
from swinlstm.data.kth import prepare_kth
from swinlstm.engine.checkpoint import save_model
from swinlstm.models import build_model
from tests.data_writers import write_avi, write_frames, write_kth, write_video

U8 = 1 / 255 + 1e-6  # one 8-bit level, on frames in [0, 1]


def _axis_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of one axis: area mean when shrinking, bilinear when growing."""
    m = np.zeros((n_out, n_in))
    if n_out <= n_in:
        edges = np.arange(n_out + 1) * (n_in / n_out)
        lo, hi = edges[:-1, None], edges[1:, None]
        j = np.arange(n_in)[None, :]
        m = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0, None) / (n_in / n_out)
        return m
    x = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    x0 = np.floor(x).astype(int)
    x1 = np.minimum(x0 + 1, n_in - 1)
    np.add.at(m, (np.arange(n_out), x0), 1 - (x - x0))
    np.add.at(m, (np.arange(n_out), x1), x - x0)
    return m


def reference_resize(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(T, H, W, C) -> float64 (T, size[0], size[1], C), in the frames' own units."""
    wy, wx = _axis_weights(frames.shape[1], size[0]), _axis_weights(frames.shape[2], size[1])
    return np.einsum("ih,thwc,jw->tijc", wy, frames.astype(np.float64), wx, optimize=True)


def reference_clip(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """What a loader must return for decoded frames (T, H, W, C): float (T, C, H', W') in [0, 1]."""
    scale = {np.uint8: 255.0, np.uint16: 65535.0}[frames.dtype.type]
    return reference_resize(frames, size).transpose(0, 3, 1, 2) / scale


def noise(shape, dtype=np.uint8, seed=0) -> np.ndarray:
    """Random pixels: the worst case for a resize (any sampling instead of averaging shows)."""
    return np.random.default_rng(seed).integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)


def decode_video(path, grey: bool) -> np.ndarray:
    """Every frame of ``path`` decoded by cv2 alone: the reference's input (codecs are lossy)."""
    cap, frames = cv2.VideoCapture(str(path)), []
    while (ok := cap.read())[0]:
        code = cv2.COLOR_BGR2GRAY if grey else cv2.COLOR_BGR2RGB
        frames.append(cv2.cvtColor(ok[1], code).reshape(*ok[1].shape[:2], -1))
    cap.release()
    return np.stack(frames)


def decode_images(paths, grey: bool) -> np.ndarray:
    flag = cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR
    imgs = [cv2.imread(str(p), flag | cv2.IMREAD_ANYDEPTH) for p in paths]
    if grey:
        return np.stack(imgs)[..., None]
    return np.stack([cv2.cvtColor(i, cv2.COLOR_BGR2RGB) for i in imgs])


def assert_close(got, want, atol):
    got = got.numpy() if isinstance(got, torch.Tensor) else got
    assert got.shape == want.shape
    err = np.abs(got.astype(np.float64) - want).max()
    assert err <= atol, f"max error {err:.3g} > {atol:.3g}"


# ----- the resize itself ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "src, dst",
    [
        ((720, 1280), (64, 64)),  # 11.25 x 20: non-integer area (crashed on OpenCV 5)
        ((120, 160), (64, 64)),
        ((1000, 1000), (128, 128)),
        ((256, 256), (96, 96)),
        ((256, 256), (128, 128)),  # integer factor
        ((120, 160), (128, 128)),  # KTH: height grows, width shrinks
        ((120, 160), (48, 80)),  # non-square to non-square
        ((30, 40), (64, 24)),
        ((16, 16), (64, 64)),  # enlarging
    ],
)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_resize_frames_matches_reference(src, dst, dtype):
    t, c = (4, 3) if src[0] * src[1] > 100_000 else (20, 3)
    frames = noise((t, *src, c), np.uint16 if dtype == np.float32 else dtype)
    if dtype == np.float32:
        frames = frames.astype(np.float32) / 65535
    out = resize_frames(frames, dst)
    assert out.shape == (t, *dst, c) and out.dtype == dtype
    atol = 1e-5 if dtype == np.float32 else 1.0  # one level of the frames' own dtype
    assert_close(out, reference_resize(frames, dst), atol)


@pytest.mark.parametrize("t, c", [(300, 1), (20, 6), (1, 4), (7, 2)])
def test_resize_any_time_and_channel_count(t, c):
    frames = noise((t, 45, 61, c), seed=t)
    assert_close(resize_frames(frames, (20, 30)), reference_resize(frames, (20, 30)), 1.0)


def test_to_tensor_clip_16_bit_scaled_by_its_range_and_rgba_dropped():
    frames = np.array([0, 255, 256, 40000, 65535], np.uint16).reshape(1, 1, 5, 1)
    clip = to_tensor_clip(frames, (1, 5), 1)  # 256 must not wrap to 0, 40000 must not clip to 1
    np.testing.assert_allclose(clip.flatten(), frames.flatten() / 65535, atol=1e-7)
    rgba = noise((3, 40, 40, 4))
    assert_close(to_tensor_clip(rgba, (16, 16), 3), reference_clip(rgba[..., :3], (16, 16)), U8)
    with pytest.raises(ValueError, match="dtype int32: use uint8, uint16 or float"):
        to_tensor_clip(np.zeros((1, 4, 4, 1), np.int32), (2, 2), 1)


# ----- the datasets ---------------------------------------------------------------------------
def test_kth_160x120_grey_jpegs_to_128(tmp_path):
    for person in (1, 17):
        write_kth(tmp_path, person, "boxing", noise((4, 120, 160), seed=person))
    s = build_datasets("kth", train_dir=tmp_path, short_len=2, out_len=2, img_size=128)
    x, y = s.train[0]
    assert x.shape == y.shape == (2, 1, 128, 128)
    files = sorted((tmp_path / "boxing" / "person01_boxing_d1_uncomp").iterdir())
    want = reference_clip(decode_images(files, grey=True), (128, 128))
    assert_close(torch.cat([x, y]), want, U8)


def test_prepare_kth_resizes_like_the_loaders(tmp_path):
    video = noise((3, 120, 160, 3), seed=4)
    write_avi(tmp_path / "raw" / "person01_boxing_d1_uncomp.avi", video)
    assert prepare_kth(tmp_path / "raw", tmp_path / "out", size=128) == 1
    files = sorted((tmp_path / "out" / "boxing" / "person01_boxing_d1_uncomp").glob("*.jpg"))
    written = decode_images(files, grey=True)
    assert written.shape == (3, 128, 128, 1)
    want = reference_resize(
        decode_video(tmp_path / "raw" / "person01_boxing_d1_uncomp.avi", True), (128, 128)
    )
    # the JPEG the frames are stored in is lossy on noise: compare means, not pixels
    assert np.abs(written - want).mean() < 6


@pytest.mark.parametrize("side, size", [(256, 128), (1000, 128), (256, 96)])
def test_human36m_rgb_jpegs_to_the_model(tmp_path, side, size):
    paths = write_frames(
        tmp_path / "images",
        noise((4, side, side, 3), seed=side),
        "S1_Walking.54138969_{:06d}.jpg",
        start=1,
    )
    (tmp_path / "train.txt").write_text("images/S1_Walking.54138969_,1\n")
    (tmp_path / "test.txt").write_text("images/S1_Walking.54138969_,1\n")
    s = build_datasets(
        "human36m", train_dir=tmp_path, short_len=2, out_len=2, img_size=size, step=1
    )
    x, y = s.test[0]
    assert x.shape == (2, 3, size, size)
    assert_close(torch.cat([x, y]), reference_clip(decode_images(paths, False), (size, size)), U8)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """A 1280x720 RGB mp4 and a 120x160 (H x W) MJPG .avi, 6 frames each."""
    root = tmp_path_factory.mktemp("videos")
    mp4 = write_video(root / "hd.mp4", noise((6, 720, 1280, 3), seed=1), fourcc="mp4v")
    avi = write_avi(root / "small.avi", noise((6, 120, 160, 3), seed=2))
    return {"mp4": mp4, "avi": avi}


CLIP_3_3 = dict(short_len=3, out_len=3, img_size=64)


@pytest.mark.parametrize("kind", ["mp4", "avi"])
@pytest.mark.parametrize("channels", [3, 1])
def test_custom_videos_to_64(videos, kind, channels):
    s = build_datasets("custom", test_dir=videos[kind], **CLIP_3_3, img_channel=channels)
    x, y = s.test[0]
    assert x.shape == (3, channels, 64, 64)  # grey videos are read as grey
    want = reference_clip(decode_video(videos[kind], grey=channels == 1), (64, 64))
    assert_close(torch.cat([x, y]), want, U8)


@pytest.mark.parametrize("channels", [1, 3])
def test_custom_array_larger_than_the_model(tmp_path, channels):
    arr = noise((3, 20, 120, 160, 3), seed=channels)
    np.save(tmp_path / "a.npy", arr)
    lengths = dict(short_len=10, out_len=10, img_size=64)
    s = build_datasets("custom", test_dir=tmp_path / "a.npy", **lengths, img_channel=channels)
    assert len(s.test) == 3
    x, y = s.test[1]
    assert x.shape == (10, channels, 64, 64)
    frames = arr[1]
    if channels == 1:  # BT.601 luma, rounded to 8 bits, then resized
        frames = np.rint(frames @ np.array([0.299, 0.587, 0.114]))[..., None].astype(np.uint8)
    assert_close(torch.cat([x, y]), reference_clip(frames, (64, 64)), U8)


@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("channels", [1, 3])
def test_custom_16_bit_frames(tmp_path, ext, channels):
    frames = noise((4, 48, 48, channels), np.uint16, seed=channels)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        assert cv2.imwrite(str(folder / f"{i}{ext}"), f if channels == 1 else f[..., ::-1])
    s = build_datasets(
        "custom", test_dir=folder, short_len=2, out_len=2, img_size=32, img_channel=channels
    )
    x, y = s.test[0]
    assert x.shape == (2, channels, 32, 32)
    assert_close(torch.cat([x, y]), reference_clip(frames, (32, 32)), 1 / 65535 + 1e-7)


def test_rgba_frames_read_as_rgb_and_mixed_depths_refused(tmp_path):
    rgba = noise((2, 40, 30, 4), seed=7)
    for i, f in enumerate(rgba):
        assert cv2.imwrite(str(tmp_path / f"{i}.png"), f[..., [2, 1, 0, 3]])  # BGRA on disk
    clip = read_clip(tmp_path)
    np.testing.assert_array_equal(clip, rgba[..., :3])  # as stored: colour, alpha dropped
    assert read_clip(tmp_path, grey=True).shape == (2, 40, 30, 1)
    assert cv2.imwrite(str(tmp_path / "2.png"), np.zeros((40, 30, 3), np.uint16))
    with pytest.raises(ValueError, match="different shapes or depths"):
        read_frames(sorted(tmp_path.glob("*.png")), grey=False)


def test_unsupported_image_depths_and_float_range_are_refused(tmp_path):
    (tmp_path / "a").mkdir()
    assert cv2.imwrite(str(tmp_path / "a" / "0.tif"), np.zeros((8, 8), np.int16))
    with pytest.raises(ValueError, match=r"0.tif: int16 pixels; use 8- or 16-bit images"):
        read_clip(tmp_path / "a")
    (tmp_path / "b").mkdir()
    assert cv2.imwrite(str(tmp_path / "b" / "0.tif"), np.full((8, 8), 0.25, np.float32))
    np.testing.assert_allclose(read_clip(tmp_path / "b", grey=True), 0.25)
    assert cv2.imwrite(str(tmp_path / "b" / "1.tif"), np.full((8, 8), 2.0, np.float32))
    with pytest.raises(ValueError, match=r"b: float values span \[0.25, 2\]"):
        read_clip(tmp_path / "b", grey=True)


def test_uint16_arrays_and_npy_clips(tmp_path):
    arr = noise((2, 6, 40, 30), np.uint16, seed=8)
    np.save(tmp_path / "a.npy", arr)
    s = build_datasets("custom", test_dir=tmp_path / "a.npy", short_len=3, out_len=3, img_size=16)
    x, y = s.test[1]
    assert_close(torch.cat([x, y]), reference_clip(arr[1][..., None], (16, 16)), 1 / 65535 + 1e-7)
    np.save(tmp_path / "clip.npy", arr[0])
    clip = read_clip(tmp_path / "clip.npy")
    assert clip.dtype == np.uint16 and clip.shape == (6, 40, 30, 1)
    np.save(tmp_path / "i32.npy", arr[0].astype(np.int32))
    with pytest.raises(ValueError, match="dtype int32; use uint8 .0..255., uint16"):
        read_clip(tmp_path / "i32.npy")


def test_non_square_frames_to_non_square_model(tmp_path):
    np.save(tmp_path / "a.npy", noise((2, 6, 120, 160), seed=3))
    s = build_datasets(
        "custom", test_dir=tmp_path / "a.npy", short_len=3, out_len=3, img_size=(48, 80)
    )
    x, y = s.test[0]
    assert x.shape == (3, 1, 48, 80)
    frames = np.load(tmp_path / "a.npy")[0][..., None]
    assert_close(torch.cat([x, y]), reference_clip(frames, (48, 80)), U8)


# ----- predict --------------------------------------------------------------------------------
def _model(tmp_path, size, channels):
    """A tiny ConvLSTM checkpoint (it takes non-square frames) of ``size`` and ``channels``."""
    torch.manual_seed(0)
    model = build_model(
        "convlstm", img_size=size, in_chans=channels, patch_size=4, num_hidden=[4], filter_size=3
    )
    save_model(model, tmp_path / "ckpt")
    return tmp_path / "ckpt"


def _predict_inputs(tmp_path, ckpt, source, short_len=4) -> np.ndarray:
    """Run ``swinlstm predict`` and read back the input frames it fed the model (T, C, H, W)."""
    out = tmp_path / "out"
    argv = ["predict", "--checkpoint", str(ckpt), "--input", str(source), "--output", str(out)]
    assert run(argv + ["--short_len", str(short_len), "--out_len", "2"]) == 0
    assert np.load(out / "prediction.npy").shape[0] == 2
    imgs = [np.asarray(Image.open(out / f"input_{t:02d}.png")) for t in range(short_len)]
    x = np.stack(imgs).astype(np.float64) / 255
    return x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)


@pytest.mark.parametrize("kind", ["mp4", "avi"])
@pytest.mark.parametrize("channels", [3, 1])
def test_predict_videos_to_64_sees_what_training_sees(tmp_path, videos, kind, channels):
    got = _predict_inputs(tmp_path, _model(tmp_path, 64, channels), videos[kind])
    assert got.shape == (4, channels, 64, 64)
    want = reference_clip(decode_video(videos[kind], grey=channels == 1)[-4:], (64, 64))
    assert_close(got, want, U8 + 1 / 510)  # + the PNG's rounding of the model's input
    # the same pixels as the custom dataset gives for the same frames
    s = build_datasets(
        "custom", test_dir=videos[kind], short_len=2, out_len=4, img_size=64, img_channel=channels
    )
    x, y = s.test[0]
    assert_close(got, np.rint(y.numpy() * 255) / 255, 1e-6)


@pytest.mark.parametrize("size", [(32, 32), (24, 40)])
def test_predict_16_bit_png_folder(tmp_path, size):
    frames = noise((5, 48, 48), np.uint16, seed=5)
    (tmp_path / "f").mkdir()
    for i, f in enumerate(frames):
        assert cv2.imwrite(str(tmp_path / "f" / f"frame_{i}.png"), f)
    got = _predict_inputs(tmp_path, _model(tmp_path, list(size), 1), tmp_path / "f")
    want = reference_clip(frames[-4:, ..., None], size)
    assert_close(got, want, 1 / 510 + 1e-6)  # the PNG of the model's input is 8-bit


def test_predict_rgb_jpeg_folder_240x320(tmp_path):
    paths = write_frames(tmp_path / "f", noise((4, 240, 320, 3), seed=6), "{:d}.jpg")
    got = _predict_inputs(tmp_path, _model(tmp_path, 64, 3), tmp_path / "f")
    assert_close(got, reference_clip(decode_images(paths, False), (64, 64)), U8 + 1 / 510)


def test_bench_resize_rows_cover_real_sizes():
    from swinlstm.bench.data import resize_rows

    rows = resize_rows(rounds=1, seconds=0.0)  # one timed call per clip size
    assert [r[1:3] for r in rows[:2]] == [
        ("20 x 720x1280x3", "64x64"),
        ("8 x 256x256x3", "128x128"),
    ]
    assert all(rate > 0 for *_, rate in rows)
