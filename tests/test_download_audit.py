"""Downloads, checksums and atomic writes under failure, served from a local HTTP server (no internet)."""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import stat
import threading

import numpy as np
import pytest
from PIL import Image

from transferkit.datasets.files import DataFile, download_file, locate, sha256sum, verify
from transferkit.errors import TransferkitError
from transferkit.io import atomic_write_bytes, atomic_write_text

PNG = b"\x89PNG\r\n\x1a\n"


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/cut":  # promises 1000 bytes, sends 100 and hangs up: an interrupted transfer
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 100)
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        body = {"/page": b"<html>please log in</html>", "/empty": b"", "/png": PNG + b"data"}.get(self.path)
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _left(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_an_interrupted_transfer_is_an_error_and_leaves_nothing(server, tmp_path):
    for sha in (None, "0" * 64):  # without a checksum (an MNIST-M image: was kept truncated) or with one
        with pytest.raises(TransferkitError, match="cut off: 100 of 1000 bytes"):
            download_file(DataFile("d/cut.bin", f"{server}/cut", sha), tmp_path)
    assert _left(tmp_path / "d") == []


def test_an_error_page_or_empty_answer_is_never_kept_as_an_image(server, tmp_path):
    with pytest.raises(TransferkitError, match="signature of its format"):
        download_file(DataFile("d/a.png", f"{server}/page", None, magic=PNG), tmp_path)
    with pytest.raises(TransferkitError, match="it is empty"):
        download_file(DataFile("d/b.png", f"{server}/empty", None), tmp_path)
    assert _left(tmp_path / "d") == []
    # an earlier, damaged copy without a checksum is fetched again, not kept because it exists
    (tmp_path / "d" / "c.png").write_bytes(b"<html>")
    path = download_file(DataFile("d/c.png", f"{server}/png", None, magic=PNG), tmp_path)
    assert path.read_bytes() == PNG + b"data"
    with pytest.raises(TransferkitError, match="HTTP 404"):
        download_file(DataFile("d/e.png", f"{server}/missing", None), tmp_path)


def test_the_checksum_error_of_a_download_names_the_url_not_a_deleted_temporary_file(server, tmp_path):
    with pytest.raises(TransferkitError, match="checksum mismatch") as info:
        download_file(DataFile("d/p.bin", f"{server}/png", "0" * 64), tmp_path)
    assert f"{server}/png" in str(info.value) and ".part" not in str(info.value)


def test_downloaded_files_get_the_users_permissions_not_mkstemps(server, tmp_path):
    old = os.umask(0o022)
    try:
        path = download_file(DataFile("d/a.png", f"{server}/png", None), tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # readable by others sharing the data root


def test_a_data_root_that_is_not_a_writable_folder_is_a_clear_error(tmp_path):
    src = tmp_path / "remote.bin"
    src.write_bytes(b"abc")
    spec = DataFile("sets/remote.bin", src.as_uri(), hashlib.sha256(b"abc").hexdigest())
    with pytest.raises(
        TransferkitError, match="cannot write sets/remote.bin into the data root.*--data-root"
    ):
        download_file(spec, src)  # a file, not a folder
    (tmp_path / "root" / spec.path).mkdir(parents=True)  # a folder where the file should be
    with pytest.raises(TransferkitError, match="not a file"):
        locate(spec, tmp_path / "root", dataset="x")


def test_a_file_replaced_with_the_same_size_and_time_is_hashed_again(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"good")
    spec = DataFile("f.bin", "https://example.invalid/f.bin", hashlib.sha256(b"good").hexdigest())
    st = path.stat()
    assert verify(path, spec) == path and sha256sum(path) == spec.sha256
    path.write_bytes(b"evil")  # e.g. `cp -p` of a damaged backup: same size, same mtime
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(TransferkitError, match="checksum mismatch"):
        verify(path, spec)


def test_atomic_writes_keep_permissions_and_leave_no_temporary_file(tmp_path):
    path = tmp_path / "secret.json"
    path.write_text("{}")
    os.chmod(path, 0o600)
    atomic_write_text(path, '{"a": 1}')
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == '{"a": 1}'
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "new.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o640
    with pytest.raises(TypeError):
        atomic_write_bytes(path, None)  # a write that fails after the temporary file was made
    assert path.read_text() == '{"a": 1}' and _left(tmp_path) == ["new.txt", "secret.json"]


def test_a_damaged_mnist_m_image_is_a_one_line_error_naming_it(tmp_path, monkeypatch):
    from transferkit.datasets import digits, is_present

    folder = tmp_path / "mnist_m" / "mnist_m_test"
    folder.mkdir(parents=True)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / "a.png")
    (folder / "b.png").write_bytes(b"<html>not found</html>")
    (tmp_path / "mnist_m" / "mnist_m_test_labels.txt").write_text("a.png 3\nb.png 7\n")
    monkeypatch.setattr(digits, "MNISTM_LABELS", digits.DataFile(digits.MNISTM_LABELS.path, "", None))
    with pytest.raises(TransferkitError, match=r"b\.png is not a readable image.*download digits"):
        digits.load_mnist_m(tmp_path)
    assert all(f.magic == PNG for f in digits.mnistm_image_files(tmp_path / digits.MNISTM_LABELS.path))
    # `transferkit datasets` says "no" when a listed image is missing, not only when a listed file is
    for f in digits.INFO.files[:3]:
        (tmp_path / f.path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f.path).write_bytes(b"x")
    assert is_present("digits", tmp_path)
    (folder / "b.png").unlink()
    assert not is_present("digits", tmp_path)


def test_downloading_the_embedded_data_set_copies_it_without_the_network(tmp_path, monkeypatch):
    import urllib.request

    from transferkit.datasets import download, load_dataset
    from transferkit.datasets.office_caltech10 import FILES

    def offline(*args, **kwargs):
        raise AssertionError("no network for an embedded data set")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    (tmp_path / FILES["dslr"].path).parent.mkdir(parents=True)
    (tmp_path / FILES["dslr"].path).write_bytes(b"damaged")
    download("office-caltech10", tmp_path, progress=False)
    for spec in FILES.values():
        assert verify(tmp_path / spec.path, spec)
    assert load_dataset("office-caltech10", root=tmp_path).counts()["dslr"] == 157
