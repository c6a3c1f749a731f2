"""download(): against a real HTTP server on 127.0.0.1 (a thread), checksums, and offline failure."""

import dataclasses
import functools
import hashlib
import http.server
import socket
import tarfile
import threading
import zipfile

import pytest

from swinlstm.cli.main import run
from swinlstm.data import build_datasets
from swinlstm.data.download import SOURCES, DownloadError, download
from tests.data_writers import ramp_video, write_frames, write_kth


@pytest.fixture
def server(tmp_path):
    """Serve tmp_path/www on a free port; yields the base URL."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", www
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/kth_action.zip"


def test_download_unpacks_a_kth_archive_the_loader_reads(tmp_path, server):
    base, www = server
    src = tmp_path / "src"
    for person, action in ((1, "boxing"), (17, "boxing")):
        write_kth(src, person, action, ramp_video(8, 8, 8, 1))
    with zipfile.ZipFile(www / "kth_action.zip", "w") as z:
        for f in src.rglob("*.jpg"):
            z.write(f, f.relative_to(src))
    root = tmp_path / "data"
    paths = download("kth", root, urls={"kth_action.zip": f"{base}/kth_action.zip"})
    assert paths == [root / "kth_action.zip"]
    s = build_datasets("kth", train_dir=root, short_len=2, out_len=2, img_size=8)
    assert len(s.train) == 2 and len(s.test) == 2


def test_checksum_checked_and_present_files_kept(tmp_path, server, monkeypatch):
    base, www = server
    (www / "mnist_test_seq.npy").write_bytes(b"payload")
    (www / "train-images-idx3-ubyte.gz").write_bytes(b"digits")
    good = {r.filename: r for r in SOURCES["movingmnist"]}
    urls = {name: f"{base}/{name}" for name in good}
    with pytest.raises(
        DownloadError, match="checksum mismatch .*expected f68b3c2dcbeaaa9fbdd348bbdeb94873"
    ):
        download("movingmnist", tmp_path / "mm", urls=urls)
    assert (
        not list((tmp_path / "mm").glob("*.part"))
        and not (tmp_path / "mm" / "train-images-idx3-ubyte.gz").exists()
    )
    # with the served files' own checksums the download completes
    patched = tuple(
        type(r)(r.url, r.filename, hashlib.md5((www / r.filename).read_bytes()).hexdigest())
        for r in good.values()
    )
    monkeypatch.setitem(SOURCES, "movingmnist", patched)
    paths = download("movingmnist", tmp_path / "mm", urls=urls)
    assert [p.read_bytes() for p in paths] == [b"digits", b"payload"]
    (www / "mnist_test_seq.npy").unlink()  # present + valid locally: not fetched again
    download("movingmnist", tmp_path / "mm", urls=urls)


def test_offline_failure_is_one_line_naming_file_and_place(tmp_path, capsys, monkeypatch):
    url = _closed_port_url()
    with pytest.raises(DownloadError) as err:
        download("kth", tmp_path, urls={"kth_action.zip": url}, timeout=5)
    msg = str(err.value)
    assert "\n" not in msg and f"could not reach {url}" in msg
    assert f"put it at {tmp_path / 'kth_action.zip'}" in msg
    # the CLI prints it as one error line (canonical address made unreachable)
    bad = tuple(type(r)(url, r.filename, r.md5, r.extract) for r in SOURCES["kth"])
    monkeypatch.setitem(SOURCES, "kth", bad)
    assert run(["data", "download", "kth", "--root", str(tmp_path)]) == 2
    out = capsys.readouterr().err.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("swinlstm data: error: could not reach")


def test_present_file_with_a_wrong_checksum_is_reported_as_such_offline(
    tmp_path, capsys, monkeypatch
):
    """Not 'could not reach': the file there is wrong; the message names it, expected and got."""
    dest = tmp_path / "train-images-idx3-ubyte.gz"
    dest.write_bytes(b"truncated")
    got = hashlib.md5(b"truncated").hexdigest()
    offline = tuple(dataclasses.replace(r, url=_closed_port_url()) for r in SOURCES["movingmnist"])
    monkeypatch.setitem(SOURCES, "movingmnist", offline)
    assert run(["data", "download", "movingmnist", "--root", str(tmp_path)]) == 2
    out = capsys.readouterr().err.strip().splitlines()
    assert len(out) == 1, out
    expected = "expected f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert f"{dest}: checksum mismatch (md5 {got}, {expected})" in out[0]
    assert "could not be reached" in out[0]
    assert not out[0].startswith("swinlstm data: error: could not")
    assert dest.read_bytes() == b"truncated"  # left for the user to look at


def test_bad_names(tmp_path):
    with pytest.raises(ValueError, match="no download for dataset 'custom'"):
        download("custom", tmp_path)
    with pytest.raises(ValueError, match="does not have"):
        download("kth", tmp_path, urls={"nope.zip": "http://127.0.0.1/x"})


def test_download_human36m_prepares_the_images_its_lists_name(tmp_path, server, monkeypatch):
    """The S*.tar frames are unpacked, written to images/ (as OpenSTL's script) and the unpacked
    copy removed; the loader then reads the lists."""
    base, www = server
    for subject in ("S1", "S5", "S6", "S7", "S8", "S9", "S11"):
        frames = write_frames(
            tmp_path / "src" / subject,
            ramp_video(40 if subject == "S1" else 1, 12, 12, 3),
            subject + "_Walking.54138969_{:06d}.jpg",
            1,
        )
        with tarfile.open(www / f"{subject}.tar", "w") as tar:
            for frame in frames:
                tar.add(frame, arcname=frame.name)  # flat, as the lists' paths imply
    (www / "train.txt").write_text("images/S1_Walking.54138969_,1,71\r\n")
    (www / "test.txt").write_text("images/S1_Walking.54138969_,2,72\r\n")
    # the served lists are not OpenSTL's: drop their pinned checksums
    unpinned = tuple(dataclasses.replace(r, md5=None) for r in SOURCES["human36m"])
    monkeypatch.setitem(SOURCES, "human36m", unpinned)
    root = tmp_path / "h36m"
    download("human36m", root, urls={r.filename: f"{base}/{r.filename}" for r in unpinned})
    assert not (root / "images_source").exists() and (root / "S1.tar").is_file()
    assert len(list((root / "images").glob("*.jpg"))) == 46
    s = build_datasets("human36m", train_dir=root, short_len=4, out_len=4, img_size=12)
    assert len(s.train) == 1 and s.test[0][1].shape == (4, 3, 12, 12)
