"""The real download path, against an HTTP server on 127.0.0.1 that the test starts."""

import hashlib
import http.server
import threading
import zipfile
from functools import partial
from pathlib import Path

import pytest

from catdog.data.datasets import load_cats_and_dogs
from catdog.data.synthetic import make_synthetic_dataset
from catdog.errors import DatasetError, DownloadError, IntegrityError


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
