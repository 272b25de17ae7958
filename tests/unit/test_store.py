"""The saved-image store: atomic commit, checksums, pruning, leftovers."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagebuild.errors import StoreError, UsageError
from imagebuild.manifest import Manifest
from imagebuild.store import CURRENT, FIRST_SAVE_BYTES, ImageStore, file_sha256


def _manifest(tag: str) -> Manifest:
    return Manifest(image=f"sagecode:{tag}", content=tag * 4, versions={"code-server": "4.1.0"},
                    layers=("base",), base_image="b", platform="amd64")


def _save(store: ImageStore, tag: str, data: bytes) -> Manifest:
    partial = store.partial_path(tag)
    store.write_stream([data[:3], data[3:]], partial)
    return store.commit(partial, _manifest(tag))


def test_store_commit_records_checksum(tmp_path: Path) -> None:
    """A committed tar has its size and SHA-256 in its manifest and in current.json."""
    store = ImageStore(tmp_path)
    store.prepare()
    saved = _save(store, "aaaa", b"image bytes")
    assert saved.tar == "sagecode-aaaa.tar"
    assert saved.tar_bytes == 11
    assert saved.tar_sha256 == file_sha256(tmp_path / saved.tar)
    assert store.current() == saved
    assert store.verify(saved) is None


def test_store_verify_detects_truncation_and_corruption(tmp_path: Path) -> None:
    """A truncated or altered tar is reported, not trusted."""
    store = ImageStore(tmp_path)
    store.prepare()
    saved = _save(store, "aaaa", b"image bytes")
    tar = tmp_path / saved.tar
    tar.write_bytes(b"image byt")
    assert "bytes" in (store.verify(saved) or "")
    tar.write_bytes(b"image BYTES")
    assert "checksum" in (store.verify(saved) or "")
    tar.unlink()
    assert "missing" in (store.verify(saved) or "")


def test_store_failed_write_keeps_previous(tmp_path: Path) -> None:
    """A save that fails midway leaves the previous tar current and no partial file."""
    store = ImageStore(tmp_path)
    store.prepare()
    good = _save(store, "aaaa", b"good")

    def broken() -> Iterator[bytes]:
        yield b"x" * 100
        raise OSError(errno.ENOSPC, "No space left on device")

    partial = store.partial_path("bbbb")
    with pytest.raises(StoreError, match="filled up during the save"):
        store.write_stream(broken(), partial)
    assert not partial.exists()
    assert store.current() == good
    assert store.verify(good) is None


def test_store_prepare_removes_leftovers(tmp_path: Path) -> None:
    """Partial files from a killed save are removed the next time the store is prepared."""
    store = ImageStore(tmp_path)
    store.prepare()
    (tmp_path / "sagecode-x.partial-123").write_bytes(b"half")
    (tmp_path / f"{CURRENT}.partial-9").write_text("{")
    store.prepare()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_store_prune_keeps_newest_and_current(tmp_path: Path) -> None:
    """Pruning keeps the newest N tars (and always the current one) with their manifests."""
    store = ImageStore(tmp_path)
    store.prepare()
    for i, tag in enumerate(("aaaa", "bbbb", "cccc")):
        _save(store, tag, tag.encode())
        os.utime(tmp_path / f"sagecode-{tag}.json", (1000 + i, 1000 + i))
    removed = store.prune(keep=1)
    assert sorted(removed) == ["sagecode-aaaa.tar", "sagecode-bbbb.tar"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current.json", "sagecode-cccc.json",
                                                          "sagecode-cccc.tar"]


def test_store_unwritable_dir_is_one_line_error(tmp_path: Path) -> None:
    """A state directory that cannot be created is a one-line error naming the flag."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UsageError, match="--state-dir"):
        ImageStore(blocker / "images").prepare()


def test_store_current_ignores_garbage(tmp_path: Path) -> None:
    """An unreadable current.json means no current image, not a crash."""
    store = ImageStore(tmp_path)
    store.prepare()
    (tmp_path / CURRENT).write_text("not json")
    assert store.current() is None


def test_store_needed_bytes_follow_the_current_tar(tmp_path: Path) -> None:
    """A save needs the current tar's size and a quarter; with nothing saved, the first-save size."""
    store = ImageStore(tmp_path)
    store.prepare()
    assert store.needed_bytes() == FIRST_SAVE_BYTES
    _save(store, "aaaa", b"x" * 4000)
    assert store.needed_bytes() == 5000


def test_store_check_space_names_the_space_needed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Too little free space is refused before a save starts, in one line with the MiB needed."""
    store = ImageStore(tmp_path)
    store.prepare()
    _save(store, "aaaa", b"x" * (8 << 20))
    monkeypatch.setattr(store, "free_bytes", lambda: 9 << 20)
    with pytest.raises(StoreError) as caught:
        store.check_space()
    assert str(caught.value).startswith(f"only 9 MiB free on the volume holding {tmp_path}; "
                                        "saving the image needs about 10 MiB")
    assert "\n" not in str(caught.value)
    monkeypatch.setattr(store, "free_bytes", lambda: 10 << 20)
    store.check_space()


def test_store_full_error_says_at_least_what_was_written(tmp_path: Path) -> None:
    """A volume that filled up mid-save asks for more than was written, not for the old estimate."""
    store = ImageStore(tmp_path)
    store.prepare()
    _save(store, "aaaa", b"x" * (1 << 20))
    message = str(store.full_error(40 << 20))
    assert "40 MiB written" in message
    assert "needs at least 50 MiB" in message
    assert "previous image is kept" in message


def test_store_write_stream_other_os_errors_are_store_errors(tmp_path: Path) -> None:
    """A write into a directory that vanished is a StoreError naming the store, not a traceback."""
    store = ImageStore(tmp_path / "images")
    store.prepare()
    (tmp_path / "images").rmdir()
    with pytest.raises(StoreError, match="cannot write the image"):
        store.write_stream([b"x"], store.partial_path("bbbb"))
