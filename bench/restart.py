"""Restart-to-ready: from an instance restart to code-server's /healthz, ours against the predecessor's.

Each round wipes the engine (``docker-engine.sh --wipe``: what a notebook instance's stop
and start does to ``/var/lib/docker``; unlike the other benchmarks, without the base image
that script imports, so no side finds a layer already unpacked) and keeps the state folder
(the persistent volume):

- **ours**: the wrapper starts as jupyter-server-proxy starts it, on a unix socket (what
  the launcher asks for where JSP >= 4 and Tornado >= 6.3 can carry it: ``auto``); it finds
  the image missing, restores the saved image (the engine pulls it from a server on
  127.0.0.1, ``imagebuild/tarserve.py``) and runs the container; timed to /healthz, asked
  for every 50 ms from the wrapper's start (the proxy too asks from the start);
- **ours on a port**: the same with ``--bind-addr 127.0.0.1:PORT`` (older proxies);
- **ours, by a load**: ``restore`` with ``SAGECODE_RESTORE_VIA=load``, the fallback where
  the engine cannot reach 127.0.0.1 (rootless) and what it did before;
- **ours, in parts**: ``python -m imagebuild restore`` alone, then the wrapper on the
  present image (what a user sees when the start hook restored before the click);
- **opt-in engine data on the volume**: dockerd and containerd restarted with their data
  kept (nothing to load), then the wrapper;
- **a breakdown of the load** (``bench/unpack.py``): the saved layers decompressed, and
  written out as files, without the engine;
- **the predecessor's method** (baseline): the same image content as a plain tar with gzip
  layers, ``docker load``, then ``docker run`` of code-server.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import unpack
from bench.common import (
    BenchError,
    Row,
    Wrapper,
    container_memory,
    dir_bytes,
    engine_data_bytes,
    finish,
    free_port,
    restart_engine,
    run,
    say,
    wait_healthy,
    wipe_engine,
)
from imagebuild.manifest import Manifest
from imagebuild.store import ImageStore

BASELINE = "sagecode-bench-baseline"


def current(state: Path) -> Manifest:
    """The saved image the benchmark restores."""
    found = ImageStore(state / "images").current()
    if found is None:
        raise BenchError(f"no saved image in {state}/images: build one first (make bench-image)")
    return found


def restore(state: Path, via: str = "pull") -> float:
    """``python -m imagebuild restore --no-build`` (``SAGECODE_RESTORE_VIA=via``): seconds."""
    start = time.monotonic()
    run([sys.executable, "-m", "imagebuild", "--state-dir", str(state), "restore", "--no-build", "-q"],
        env={**os.environ, "SAGECODE_RESTORE_VIA": via})
    return time.monotonic() - start


def baseline_tar(state: Path, image: str, folder: Path) -> Path:
    """The same image as a plain tar with gzip layers, as ``docker save`` of a gzip image writes.

    OCI media types: with Docker's (and with uncompressed layers) this engine refuses to
    load a tar re-exported from zstd layers ("mismatched image rootfs and manifest layers");
    the issue measured uncompressed no faster than gzip.
    """
    restore(state)
    tar = folder / "baseline.tar"
    context = folder / "context"
    context.mkdir(exist_ok=True)
    (context / "Dockerfile").write_text(f"FROM {image}\n")
    run(["docker", "buildx", "build", "--quiet", "--output",
         f"type=docker,name={BASELINE}:latest,dest={tar},compression=gzip,force-compression=true,"
         "oci-mediatypes=true",
         str(context)])  # fmt: skip
    return tar


def ours(state: Path, workspace: Path, unix_socket: bool = True) -> float:
    """Engine wiped; the wrapper restores and starts code-server: seconds to /healthz."""
    wipe_engine(base=False)
    return relaunch(state, workspace, unix_socket)


def ours_in_parts(state: Path, workspace: Path) -> tuple[float, float, int]:
    """Engine wiped; restore alone, then the wrapper on the present image; the idle memory."""
    wipe_engine(base=False)
    load = restore(state)
    wrapper = Wrapper(state, workspace)
    start = time.monotonic()
    wrapper.start()
    try:
        ready = wrapper.ready(start)
        time.sleep(20)  # idle: code-server up, nobody connected
        memory = container_memory(wrapper.name)
    finally:
        wrapper.stop()
    return load, ready, memory


def restore_by_load(state: Path) -> float:
    """Engine wiped; ``restore`` made to load the tar (``SAGECODE_RESTORE_VIA=load``): its
    fallback where the engine cannot reach 127.0.0.1 (rootless), and what it did before it
    pulled."""
    wipe_engine(base=False)
    return restore(state, via="load")


def engine_kept(state: Path, workspace: Path) -> float:
    """dockerd and containerd restarted with their data (the opt-in mode): wrapper to /healthz."""
    restart_engine()
    return relaunch(state, workspace)


def relaunch(state: Path, workspace: Path, unix_socket: bool = True) -> float:
    """The wrapper started again on the present image (Jupyter restarted, the card reopened)."""
    wrapper = Wrapper(state, workspace, unix_socket)
    start = time.monotonic()
    wrapper.start()
    try:
        return wrapper.ready(start)
    finally:
        wrapper.stop()


def predecessor(tar: Path, workspace: Path) -> tuple[float, float]:
    """Engine wiped; ``docker load`` the plain tar, ``docker run`` code-server: load and ready seconds."""
    wipe_engine(base=False)
    port = free_port()
    start = time.monotonic()
    run(["docker", "load", "-q", "-i", str(tar)])
    load = time.monotonic() - start
    run(["docker", "run", "-d", "--rm", "--name", BASELINE, "-p", f"127.0.0.1:{port}:8080",
         "-v", f"{workspace}:/workspace", "--entrypoint", "/usr/local/bin/code-server", f"{BASELINE}:latest",
         "--bind-addr", "0.0.0.0:8080", "--auth", "none", "/workspace"])  # fmt: skip
    try:
        return load, wait_healthy(port, start)
    finally:
        subprocess.run(["docker", "rm", "-f", BASELINE], capture_output=True, check=False)


def bench(state: Path, rounds: int) -> list[Row]:
    """Every restart figure, ``rounds`` times each, interleaved so noise hits both sides."""
    manifest = current(state)
    folder = Path(tempfile.mkdtemp(prefix="sagecode-bench-", dir="/var/tmp"))
    workspace = folder / "SageMaker"
    workspace.mkdir()
    (workspace / "notebook.py").write_text("print('hello')\n")
    try:
        say(f"making the baseline's plain tar of {manifest.image}")
        tar = baseline_tar(state, manifest.image, folder)
        plain_bytes = tar.stat().st_size
        wrapped, load, present, memory, kept, warm, loaded = [], [], [], [], [], [], []
        wrapped_tcp, warm_tcp = [], []
        our_tar = ImageStore(state / "images").export_tar(manifest, folder / "saved.tar")
        base_load, base_ready = [], []
        for n in range(1, rounds + 1):
            say(f"round {n}/{rounds}: ours (wrapper after a wipe)")
            wrapped.append(ours(state, workspace))
            say(f"round {n}: ours {wrapped[-1]:.1f} s")
            say(f"round {n}/{rounds}: ours on a 127.0.0.1 port (older proxies)")
            wrapped_tcp.append(ours(state, workspace, unix_socket=False))
            say(f"round {n}/{rounds}: ours in parts (restore, then the wrapper)")
            a, b, m = ours_in_parts(state, workspace)
            load.append(a)
            present.append(b)
            memory.append(m)
            say(f"round {n}/{rounds}: restore by a load of the same tar (the fallback)")
            loaded.append(restore_by_load(state))
            say(f"round {n}/{rounds}: engine data kept")
            kept.append(engine_kept(state, workspace))
            warm.append(relaunch(state, workspace))
            warm_tcp.append(relaunch(state, workspace, unix_socket=False))
            say(f"round {n}/{rounds}: the predecessor's method")
            c, d = predecessor(tar, workspace)
            base_load.append(c)
            base_ready.append(d)
            say(f"round {n}: on a port {wrapped_tcp[-1]:.1f} s; restore {a:.1f} s + present {b:.1f} s; "
                f"kept {kept[-1]:.1f} s; warm {warm[-1]:.1f} s (on a port {warm_tcp[-1]:.1f} s); "
                f"predecessor load {c:.1f} s, ready {d:.1f} s")
        engine_bytes = engine_data_bytes()
        say("breakdown of a load: decompress and write the saved tar's layers without the engine")
        breakdown = unpack.bench(our_tar, rounds, folder)
    finally:
        finish(folder)
    half = 0.5 * statistics.median(base_ready)
    return [
        Row("restart-to-ready: wrapper after an engine wipe (restores the saved image), on a unix socket",
            wrapped, baseline=base_ready,
            target=f"<= 0.5x ({half:.1f} s); stretch <= 5 s", met=statistics.median(wrapped) <= half),
        Row("  the same on a 127.0.0.1 port (proxies without unix sockets)", wrapped_tcp,
            baseline=base_ready),
        Row("  predecessor: docker load (plain tar) + docker run to /healthz", base_ready),
        Row("  part: imagebuild restore (the engine pulls the saved image over 127.0.0.1)", load,
            baseline=base_load),
        Row("  predecessor part: docker load of the plain tar", base_load),
        Row("  part: imagebuild restore made to load it, digests checked on the way (the fallback)", loaded,
            baseline=base_load),
        *breakdown,
        Row("  part: wrapper start to /healthz, image just loaded", present),
        Row("wrapper start to /healthz, image present (relaunch, caches warm), on a unix socket", warm,
            target="<= 2 s", met=statistics.median(warm) <= 2.0),
        Row("  the same on a 127.0.0.1 port", warm_tcp, target="<= 2 s",
            met=statistics.median(warm_tcp) <= 2.0),
        Row("opt-in engine data kept on the volume: daemon restart, wrapper to /healthz", kept,
            baseline=base_ready),
        Row("idle editor container memory (20 s after /healthz)", [float(x) for x in memory], unit="B"),
        Row("saved image (zstd, OCI)", [float(manifest.tar_bytes)], unit="B",
            baseline=[float(plain_bytes)]),
        Row("engine data for the image (disk cost of the opt-in mode)", [float(engine_bytes)], unit="B"),
        Row("state folder (saved image + manifest + cache)", [float(dir_bytes(state))], unit="B"),
    ]
