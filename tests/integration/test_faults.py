"""Faults injected for real into a build and save of the small image: a volume that is too
small or fills up mid-save (a tmpfs), the build killed with SIGKILL, the engine restarting.

Each test starts from a saved image and checks that it survives: its blobs still match their
digests and it loads, ``current.json`` still names it, nothing half-written is left (partial
files, BuildKit's unfinished blobs, blobs no saved image refers to), and the next run
succeeds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagebuild import manifest, tarserve
from imagebuild.manifest import Manifest
from imagebuild.store import LAYOUT, PARTIAL, ImageStore
from tests.integration.conftest import (
    IN_CI,
    ROOT,
    SMALL,
    build_args,
    engine_script,
    engine_up,
    imagebuild,
    need,
    saved_tar,
)

pytestmark = [pytest.mark.engine]
# A second small image with other content than SMALL's: a build that must save a new tar.
OTHER = (*SMALL[:-1], f"{SMALL[-1]},shell")
MIB = 1 << 20


def _current(state: Path) -> Manifest:
    current = ImageStore(state / "images").current()
    assert current is not None
    return current


def _partials(state: Path) -> list[Path]:
    """What a save that was cut off left: partial files, BuildKit's unfinished blobs, blobs
    no saved image refers to."""
    store = ImageStore(state / "images")
    wanted = {d for m in _saved(store) for d in store.image(m).blobs}
    return sorted([*store.root.glob(f"*{PARTIAL}*"), *(store.layout / "ingest").rglob("data"),
                   *(tarserve.blob_path(store.layout, d) for d in store.blobs() - wanted)])


def _saved(store: ImageStore) -> list[Manifest]:
    return [m for m in map(manifest.read, store.root.glob("*.json")) if m.oci_manifest]


def _assert_previous_survives(state: Path, previous: Manifest) -> None:
    """The previous image is still current, its blobs match their digests, it loads."""
    store = ImageStore(state / "images")
    assert store.current() == previous
    assert store.verify(previous) is None
    assert not list(store.root.glob("*.tar"))
    tar = saved_tar(state, state.parent / f"{state.name}-previous.tar")
    loaded = subprocess.run(["docker", "load", "-i", str(tar)],
                            check=False, capture_output=True, text=True, timeout=600)
    tar.unlink()
    assert loaded.returncode == 0, loaded.stderr
    assert previous.image in loaded.stdout


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _start_build(state: Path, *args: str) -> subprocess.Popen[bytes]:
    """``python -m imagebuild`` in its own process group, as a hook's background job runs it;
    its output goes to ``_log(state)`` (a pipe nobody reads could stall it)."""
    cmd = [sys.executable, "-m", "imagebuild", "--state-dir", str(state), *build_args(), *args]
    with _log(state).open("wb") as log:
        return subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _log(state: Path) -> Path:
    return state.parent / f"{state.name}-build.log"


def _wait_for_partial(state: Path, proc: subprocess.Popen[bytes], timeout: float = 600) -> Path:
    """A blob BuildKit is writing into the layout folder, once it holds some bytes."""
    ingest = state / "images" / LAYOUT / "ingest"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:  # BuildKit creates and removes ingest folders while this walks them
            found = [p for p in ingest.rglob("data") if _size(p) > 0] if ingest.is_dir() else []
        except FileNotFoundError:
            found = []
        if found:
            return found[0]
        time.sleep(0.005)
    raise AssertionError(f"no blob was being written (exit code {proc.poll()})")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _wait_for_output(state: Path, proc: subprocess.Popen[bytes], text: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while text not in _log(state).read_text(errors="replace"):
        assert proc.poll() is None, f"the build ended before {text!r} appeared"
        assert time.monotonic() < deadline, f"{text!r} never appeared"
        time.sleep(0.1)


def _finish(state: Path, proc: subprocess.Popen[bytes], timeout: float = 900) -> str:
    proc.wait(timeout)
    return _log(state).read_text(errors="replace")


def _mount_tmpfs(path: Path, size: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=755", "sagecode-test", str(path)],
                   check=True, capture_output=True, timeout=30)


def _resize_tmpfs(path: Path, free: int) -> None:
    """Shrink the tmpfs so that ``free`` bytes are left."""
    stats = os.statvfs(path)
    used = (stats.f_blocks - stats.f_bfree) * stats.f_frsize
    subprocess.run(["mount", "-o", f"remount,size={used + free}", str(path)],
                   check=True, capture_output=True, timeout=30)


@pytest.fixture
def small_volume(docker_engine: None, tmp_path: Path) -> Iterator[Path]:
    """A tmpfs state dir (mounted large, shrunk by the test) holding a saved small image."""
    need(os.geteuid() == 0, "mounting a tmpfs volume needs root")
    volume = tmp_path / "volume"
    _mount_tmpfs(volume, 4 << 30)  # a size limit only: tmpfs uses memory as files are written
    try:
        imagebuild(volume, *build_args(), *SMALL)
        yield volume
    finally:
        subprocess.run(["umount", "-l", str(volume)], check=False, capture_output=True, timeout=30)


def test_full_volume_is_refused_before_the_build(small_volume: Path) -> None:
    """Too little room for another tar: one line with the MiB needed, before any build step."""
    previous = _current(small_volume)
    _resize_tmpfs(small_volume, previous.tar_bytes)
    result = imagebuild(small_volume, *build_args(), *OTHER, check=False)
    assert result.returncode == 2
    errors = _error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    needed = -(-(previous.tar_bytes + previous.tar_bytes // 4) // MIB)
    assert f"saving the image needs about {needed} MiB" in errors[0]
    assert "building" not in result.stderr
    _assert_previous_survives(small_volume, previous)


def test_volume_filling_up_mid_save_keeps_previous_image(small_volume: Path) -> None:
    """The volume fills up while the new image is saved: what it wrote removed, previous kept,
    a rerun works."""
    previous = _current(small_volume)
    _resize_tmpfs(small_volume, previous.tar_bytes * 2)
    filler = small_volume / "filler"
    # --no-cache: every layer compressed again, so the save writes new blobs for seconds
    proc = _start_build(small_volume, *OTHER, "--no-cache")
    _wait_for_partial(small_volume, proc)
    fill = threading.Thread(target=_fill, args=(filler,))
    fill.start()
    stderr = _finish(small_volume, proc)
    fill.join()
    assert proc.returncode == 2, stderr
    errors = _error_lines(stderr)
    assert len(errors) == 1, stderr
    assert f"the volume holding {small_volume / 'images'} filled up during the save" in errors[0]
    assert "MiB free); the save needs at least" in errors[0]
    assert "the previous image is kept" in errors[0]
    assert _partials(small_volume) == []
    _assert_previous_survives(small_volume, previous)
    filler.unlink()
    imagebuild(small_volume, *build_args(), *OTHER)
    assert _current(small_volume) != previous
    assert ImageStore(small_volume / "images").verify(_current(small_volume)) is None


def _fill(path: Path) -> None:
    """Write ``path`` until the volume is full, as another program on the notebook might."""
    block = b"\0" * MIB
    with path.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(block)
                out.flush()
        except OSError:
            return


def test_sigkill_during_save_keeps_previous_tar_and_next_run_cleans_up(
    docker_engine: None, tmp_path: Path
) -> None:
    """python -m imagebuild SIGKILLed while saving the image: the previous one stays whole and
    loadable, the leftovers are removed by the next run, which then succeeds."""
    imagebuild(tmp_path, *build_args(), *SMALL)
    previous = _current(tmp_path)
    proc = _start_build(tmp_path, *OTHER, "--no-cache")  # a save that writes for seconds
    partial = _wait_for_partial(tmp_path, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(60)
    assert proc.returncode == -signal.SIGKILL
    assert _partials(tmp_path)  # killed mid-write: nothing could clean up
    del partial
    _assert_previous_survives(tmp_path, previous)
    restored = imagebuild(tmp_path, "restore", "--no-build")
    assert restored.stdout.strip() == f"{previous.image} present"
    assert _partials(tmp_path) == []
    imagebuild(tmp_path, *build_args(), *OTHER)
    assert _partials(tmp_path) == []
    assert ImageStore(tmp_path / "images").verify(_current(tmp_path)) is None


def _restart_engine() -> None:
    """Stop dockerd (not containerd, not its state) by its pid and start it again with the engine script."""
    pid = subprocess.run(["pgrep", "-u", "0", "-x", "dockerd"], check=True, capture_output=True,
                         text=True).stdout.split()[0]
    os.kill(int(pid), signal.SIGTERM)
    deadline = time.monotonic() + 60
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    engine_script()


@pytest.mark.wipe
def test_engine_restart_mid_build_is_one_line_and_next_run_succeeds(
    docker_engine: None, tmp_path: Path
) -> None:
    """dockerd restarts while a build runs: one error line, the old image kept, the next run builds."""
    need(IN_CI or os.environ.get("SAGECODE_TEST_WIPE") == "1",
         "restarting the shared engine needs SAGECODE_TEST_WIPE=1 outside CI")
    imagebuild(tmp_path, *build_args(), *SMALL)
    previous = _current(tmp_path)
    proc = _start_build(tmp_path, *OTHER, "--no-cache")
    _wait_for_output(tmp_path, proc, "apt-install.sh")  # a build step is running
    _restart_engine()
    stderr = _finish(tmp_path, proc)
    assert proc.returncode == 2, stderr
    errors = _error_lines(stderr)
    assert len(errors) == 1, stderr
    assert errors[0].startswith("error: the image build failed")
    assert _partials(tmp_path) == []
    assert engine_up()
    _assert_previous_survives(tmp_path, previous)
    imagebuild(tmp_path, *build_args(), *OTHER)
    assert ImageStore(tmp_path / "images").verify(_current(tmp_path)) is None


def test_failed_cache_export_still_saves_the_image(docker_engine: None, tmp_path: Path) -> None:
    """The cache's folder fills up during its export (a 1 MiB tmpfs): BuildKit's export fails, the
    build does not: the image is in the engine, saved and verified, the export's
    leftovers deleted."""
    need(os.geteuid() == 0, "mounting a tmpfs needs root")
    cache = tmp_path / "cache"
    _mount_tmpfs(cache, MIB)
    try:
        result = imagebuild(tmp_path, *build_args(), *SMALL)
        assert list(cache.iterdir()) == []  # what the failed export wrote was pruned
    finally:
        subprocess.run(["umount", "-l", str(cache)], check=False, capture_output=True, timeout=30)
    assert "no space left on device" in result.stderr.lower()  # the export was tried, and failed
    current = _current(tmp_path)
    assert ImageStore(tmp_path / "images").verify(current) is None
    found = subprocess.run(["docker", "image", "inspect", current.image], check=False, capture_output=True)
    assert found.returncode == 0
    assert _partials(tmp_path) == []
