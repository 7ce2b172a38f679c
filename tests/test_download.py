"""The real download path, against an HTTP server on 127.0.0.1 that the test starts."""

import hashlib
import http.server
import os
import subprocess
import sys
import textwrap
import threading
import zipfile
from functools import partial
from pathlib import Path

import pytest

import catdog
import catdog.data.download
from catdog.data.datasets import load_cats_and_dogs
from catdog.data.synthetic import make_synthetic_dataset
from catdog.errors import DatasetError, DownloadError, IntegrityError, InvalidArgumentError

from .helpers import HOLD_LOCK


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        type(self).requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """Serve tmp_path/www on a free loopback port; yields (base URL, www folder, requests)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = type("Handler", (_Handler,), {"requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=www))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", www, handler.requests
    httpd.shutdown()
    httpd.server_close()


def _zip_folder(source: Path, archive: Path, top: str = "cats_and_dogs_filtered", extra=()):
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                zf.write(path, f"{top}/{path.relative_to(source)}")
        for name, data in extra:
            zf.writestr(name, data)
    return hashlib.sha256(archive.read_bytes()).hexdigest()


@pytest.fixture
def archive(tmp_path, server):
    url, www, _ = server
    data = make_synthetic_dataset(tmp_path / "src", images_per_class=10, image_size=(32, 32))
    digest = _zip_folder(data, www / "cats_and_dogs_filtered.zip")
    return f"{url}/cats_and_dogs_filtered.zip", digest


def _left_in(folder):
    """What a download left in ``folder``, besides the empty hidden lock files it keeps."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


def test_download_extract_and_cache(tmp_path, server, archive):
    origin, digest = archive
    _, _, requests = server
    cache = tmp_path / "cache"
    splits = load_cats_and_dogs(cache, origin=origin, file_hash=digest, image_size=(32, 32))
    assert splits.class_names == ["cats", "dogs"]
    assert [len(splits.files[s]) for s in ("train", "validation", "test")] == [20, 8, 2]
    assert requests == ["/cats_and_dogs_filtered.zip"]
    datasets = cache / "datasets"
    assert (datasets / "cats_and_dogs_filtered" / "train" / "cats").is_dir()
    assert _left_in(datasets) == [
        "cats_and_dogs_filtered",
        "cats_and_dogs_filtered.zip",
    ]
    again = load_cats_and_dogs(cache, origin=origin, file_hash=digest, image_size=(32, 32))
    assert requests == ["/cats_and_dogs_filtered.zip"], "second call must use the cache"
    assert again.files == splits.files


def test_wrong_hash_fails_and_leaves_nothing(tmp_path, server, archive):
    origin, digest = archive
    cache = tmp_path / "cache"
    wrong = "0" * 64
    with pytest.raises(IntegrityError, match=f"expected {wrong}, got {digest}"):
        load_cats_and_dogs(cache, origin=origin, file_hash=wrong)
    assert _left_in(cache / "datasets") == []
    # a retry with the right hash downloads again and succeeds
    _, _, requests = server
    load_cats_and_dogs(cache, origin=origin, file_hash=digest, image_size=(16, 16))
    assert len(requests) == 2


def test_wrong_size_fails_cleanly(tmp_path, archive, monkeypatch):
    origin, _ = archive
    cache = tmp_path / "cache"
    # where load_cats_and_dogs looks it up: checked by size, as the real one
    monkeypatch.setattr("catdog.data.datasets.CATS_AND_DOGS_URL", origin)
    with pytest.raises(IntegrityError, match="expected 68,606,236 bytes"):
        load_cats_and_dogs(cache, origin=origin)
    assert _left_in(cache / "datasets") == []


def test_corrupt_cached_archive_is_downloaded_again(tmp_path, server, archive):
    origin, digest = archive
    datasets = tmp_path / "cache" / "datasets"
    datasets.mkdir(parents=True)
    (datasets / "cats_and_dogs_filtered.zip").write_bytes(b"half a file")
    (datasets / "cats_and_dogs_filtered.zip.part").write_bytes(b"left by a killed run")
    load_cats_and_dogs(tmp_path / "cache", origin=origin, file_hash=digest, image_size=(16, 16))
    assert len(server[2]) == 1
    assert not (datasets / "cats_and_dogs_filtered.zip.part").exists()


def test_unreachable_origin(tmp_path, server):
    url, _, _ = server
    with pytest.raises(DownloadError, match="Could not download"):
        load_cats_and_dogs(tmp_path / "c", origin=f"{url}/missing.zip", file_hash="0" * 64)
    assert _left_in(tmp_path / "c" / "datasets") == []


def test_archive_with_parent_member_is_refused(tmp_path, server):
    url, www, _ = server
    data = make_synthetic_dataset(tmp_path / "src", images_per_class=2, image_size=(16, 16))
    digest = _zip_folder(data, www / "evil.zip", extra=[("../escape.txt", "gotcha")])
    with pytest.raises(DatasetError, match=r"\.\./escape\.txt"):
        load_cats_and_dogs(tmp_path / "c", origin=f"{url}/evil.zip", file_hash=digest)
    assert not (tmp_path / "c" / "escape.txt").exists()
    assert not (tmp_path / "c" / "datasets" / "cats_and_dogs_filtered").exists()


def test_file_url_origin(tmp_path):
    data = make_synthetic_dataset(tmp_path / "src", images_per_class=3, image_size=(16, 16))
    digest = _zip_folder(data, tmp_path / "local.zip")
    splits = load_cats_and_dogs(
        tmp_path / "c",
        origin=(tmp_path / "local.zip").as_uri(),
        file_hash=digest,
        image_size=(16, 16),
    )
    assert len(splits.files["train"]) == 6


def test_a_new_archive_is_extracted_again(tmp_path):
    def archive(name, per_class):
        data = make_synthetic_dataset(
            tmp_path / name, images_per_class=per_class, image_size=(8, 8)
        )
        path = tmp_path / f"{name}.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for file in sorted(data.rglob("*.jpg")):
                zf.write(file, f"cats_and_dogs_filtered/{file.relative_to(data)}")
        return path.as_uri(), catdog.io.sha256sum(path)

    cache = tmp_path / "cache"
    for name, per_class in (("old", 5), ("new", 10)):
        origin, digest = archive(name, per_class)
        splits = catdog.load_cats_and_dogs(
            cache, origin=origin, file_hash=digest, image_size=(8, 8)
        )
        assert len(splits.files["train"]) == 2 * per_class
    with pytest.raises(InvalidArgumentError, match="needs file_hash"):
        catdog.load_cats_and_dogs(cache, origin=origin)


EXTRACT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from catdog.data.download import extract_once
    print(len(list(extract_once(Path(sys.argv[1]), Path(sys.argv[2]), "top").rglob("*.bin"))))
    """
)


def test_concurrent_extractions_wait_for_each_other(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(50):
            zf.writestr(f"top/{i}.bin", os.urandom(256))
    target = tmp_path / "datasets"
    target.mkdir()
    holder = subprocess.Popen(  # another process extracting right now
        [sys.executable, "-c", HOLD_LOCK, str(target / ".top.lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    waiting = subprocess.Popen(
        [sys.executable, "-c", EXTRACT, str(archive), str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with pytest.raises(subprocess.TimeoutExpired):
        waiting.wait(timeout=3)  # it waits for the lock, and writes nothing meanwhile
    assert not (target / "top").exists()
    holder.communicate("")  # the other process is done
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0 and out.strip() == "50", err
    assert "Waiting for another catdog process" in err


def test_a_folder_catdog_did_not_extract_is_kept(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("top/new.txt", "from the archive")
    (tmp_path / "top").mkdir()
    (tmp_path / "top" / "mine.txt").write_text("the user's")
    catdog.data.download.extract_once(archive, tmp_path, "top")
    assert (tmp_path / "top" / "new.txt").exists()
    assert (tmp_path / "top.previous-1" / "mine.txt").read_text() == "the user's"


def test_zip_bombs_are_refused_before_extraction(tmp_path, monkeypatch):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("top/zeros.bin", b"\0" * (8 << 20))  # 8 MiB that compress to ~8 KiB
    monkeypatch.setattr(catdog.data.download, "MAX_EXTRACT_BYTES", 1 << 20)
    with pytest.raises(DatasetError, match="over the limits"):
        catdog.data.download.extract_once(archive, tmp_path, "top")
    assert not (tmp_path / "top").exists()
    monkeypatch.setattr(catdog.data.download, "MAX_EXTRACT_BYTES", 1 << 30)
    monkeypatch.setattr(catdog.data.download, "MAX_EXTRACT_MEMBERS", 0)
    with pytest.raises(DatasetError, match="1 members"):
        catdog.data.download.extract_once(archive, tmp_path, "top")
