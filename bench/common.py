"""What the benchmarks share: the engine's restarts, code-server's readiness, timing, the report.

Every figure is a median of repeated runs; every target figure is printed beside a
baseline measured in the same invocation, on the same machine, with the same content.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

ROOT = Path(__file__).resolve().parents[1]
ENGINE_SCRIPT = Path(os.environ.get("SAGECODE_ENGINE_SCRIPT", ROOT.parent / "shared/tools/docker-engine.sh"))
BASE_IMAGE = os.environ.get("SAGECODE_BENCH_BASE_IMAGE", "local/debian:bookworm")
CA_BUNDLE = os.environ.get("SAGECODE_BENCH_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
READY_TIMEOUT = 300.0
# A 127.0.0.1 port, or a unix socket's path.
Address = Union[int, str]


class BenchError(Exception):
    """A benchmark cannot run; the message says what to do."""


def say(message: str) -> None:
    """Progress on stderr (the report goes to stdout)."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def run(argv: Sequence[str], *, timeout: float = 3600, env: Optional[dict[str, str]] = None,
        quiet: bool = True) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run ``argv``; a failure raises with the end of its output."""
    done = subprocess.run(list(argv), capture_output=quiet, text=True, timeout=timeout, check=False,
                          env=env, cwd=ROOT)  # fmt: skip
    if done.returncode != 0:
        tail = (done.stderr or done.stdout or "")[-3000:] if quiet else ""
        raise BenchError(f"{' '.join(argv[:4])} ... failed ({done.returncode}):\n{tail}")
    return done


def timed(argv: Sequence[str], **kwargs: object) -> float:
    """Seconds ``argv`` took."""
    start = time.monotonic()
    run(argv, **kwargs)  # type: ignore[arg-type]
    return time.monotonic() - start


# --- the engine ---------------------------------------------------------------


def engine_script(*args: str, base: Optional[str] = BASE_IMAGE) -> subprocess.CompletedProcess[str]:
    """Run docker-engine.sh (root), making ``base`` the base image the builds use (none if
    None); returns the run that worked (its stderr names DOCKER_HOST in rootless mode).

    Right after it starts dockerd, dockerd may answer before it lists buildx and its
    snapshotter, and the script gives up; it is run again (without ``--wipe``: that is done)
    twice, 3 s apart, before the failure counts. The integration tests call this too.
    """
    if not ENGINE_SCRIPT.is_file():
        raise BenchError(f"{ENGINE_SCRIPT} not found: set SAGECODE_ENGINE_SCRIPT to docker-engine.sh")
    command = ["bash", str(ENGINE_SCRIPT), *(("--base-image", base) if base else ())]
    for attempt in range(3):
        try:
            again = [a for a in args if a != "--wipe"]
            return run([*command, *(args if attempt == 0 else again)], timeout=900)
        except BenchError:
            if attempt == 2:
                raise
            time.sleep(3)
    raise AssertionError("unreachable")


DROP_CACHES = Path("/proc/sys/vm/drop_caches")


def cold_caches() -> None:
    """What a reboot leaves behind: no unflushed writes and nothing cached.

    ``sync`` writes out what the previous run left (gigabytes after a load), which would
    otherwise be paid by whichever measure comes next. Dropping the page, dentry and inode
    caches makes the next measure start cold, as after a reboot: the saved tar is read from
    the disk, not from memory. It also drops the deleted engine's inode blocks. Without a
    journal (this machine's ext4), every file created within minutes of a mass delete
    otherwise scans past the deleted inodes still in that cache. That cost grows with the
    number of files, the same for every side, and a restarted instance, whose engine disk is
    fresh, never pays it. Measured on 2026-12-05: a load right after ``--wipe`` took
    15.5-35 s, and 12.3-13.0 s after this.
    """
    subprocess.run(["sync"], check=False)
    try:
        DROP_CACHES.write_text("3\n")
    except OSError as exc:
        raise BenchError(f"cannot drop the page cache ({exc.strerror}): run the benchmarks as root") from exc


def wipe_engine(base: bool = True) -> None:
    """An instance restart: every image, container and build record of the engine is gone,
    and the caches are cold (:func:`cold_caches`).

    docker-engine.sh then imports the base image the builds start from, unless ``base`` is
    false: a restarted instance's engine holds nothing, and a restore or load that finds the
    base image's layer already unpacked skips it.
    """
    engine_script("--wipe", base=BASE_IMAGE if base else None)
    cold_caches()


def restart_engine() -> None:
    """Stop dockerd and containerd and start them again with their data kept.

    This is the restart of the opt-in mode whose engine data lives on the persistent volume.
    """
    for name in ("dockerd", "containerd"):
        found = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True, check=False)
        pids = found.stdout.split()
        for pid in pids:
            os.kill(int(pid), signal.SIGTERM)
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
    cold_caches()
    engine_script()


def engine_data_bytes() -> int:
    """What the engine keeps on disk (its image content and snapshots)."""
    total = 0
    for root in ("/var/lib/containerd", "/var/lib/docker"):
        done = subprocess.run(["du", "-sxb", root], capture_output=True, text=True, check=False)
        if done.returncode == 0 and done.stdout:
            total += int(done.stdout.split()[0])
    return total


def dir_bytes(path: Path) -> int:
    """Bytes under ``path`` (0 when missing)."""
    if not path.exists():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


# --- code-server ---------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthy(address: Address) -> bool:
    """code-server answers /healthz on 127.0.0.1:``address`` (a port) or on a unix socket (a path)."""
    try:
        if isinstance(address, int):
            with urllib.request.urlopen(f"http://127.0.0.1:{address}/healthz", timeout=2) as answer:
                return bool(answer.status == 200)
        connection = UnixHTTPConnection(address, timeout=2)
        try:
            connection.request("GET", "/healthz")
            return connection.getresponse().status == 200
        finally:
            connection.close()
    except (OSError, urllib.error.URLError, http.client.HTTPException):
        return False


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket, as jupyter-server-proxy reaches a ``unix_socket`` server
    (the tests use it too)."""

    def __init__(self, path: Union[str, os.PathLike[str]], timeout: float = 5.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = os.fspath(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def wait_healthy(address: Address, start: float, process: Optional[subprocess.Popen[bytes]] = None,
                 log: Optional[Path] = None) -> float:  # fmt: skip
    """Seconds from ``start`` (a monotonic time) until /healthz answers."""
    while time.monotonic() - start < READY_TIMEOUT:
        if healthy(address):
            return time.monotonic() - start
        if process is not None and process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log else ""
            raise BenchError(f"the wrapper exited with {process.returncode}:\n{tail}")
        time.sleep(0.05)
    raise BenchError(f"no /healthz on {address} in {READY_TIMEOUT:.0f} s")


def log_file(what: str) -> Path:
    """A fresh private file for ``what``'s output."""
    fd, name = tempfile.mkstemp(prefix=f"sagecode-bench-{what}-", suffix=".log")
    os.close(fd)
    return Path(name)


@dataclass
class Wrapper:
    """The installed ``code-server`` wrapper, started as jupyter-server-proxy starts it.

    ``unix_socket``: on a unix socket in a private folder, as JSP 4 with Tornado >= 6.3 runs it
    (the launcher's default, ``auto``); else on a 127.0.0.1 port, as older proxies do.
    """

    state: Path
    workspace: Path
    unix_socket: bool = True
    name: str = "sagecode-bench"
    process: Optional[subprocess.Popen[bytes]] = None
    log: Path = field(default_factory=lambda: log_file("wrapper"))
    address: Address = 0
    folder: Optional[Path] = None

    def start(self) -> None:
        """``code-server --socket PATH`` or ``--bind-addr 127.0.0.1:PORT``, ``--auth none WORKSPACE``."""
        if self.unix_socket:
            self.folder = Path(tempfile.mkdtemp(prefix="sagecode-bench-socket-"))  # mode 700, as JSP's
            self.address = str(self.folder / "code-server.sock")
            listen = ["--socket", self.address]
        else:
            self.address = free_port()
            listen = ["--bind-addr", f"127.0.0.1:{self.address}"]
        binary = Path(sys.executable).parent / "code-server"
        env = {**os.environ, "SAGECODE_STATE_DIR": str(self.state), "SAGECODE_WORKSPACE": str(self.workspace),
               "SAGECODE_CONTAINER": self.name, "SAGECODE_IMAGE_WAIT": "600"}  # fmt: skip
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [str(binary), *listen, "--auth", "none", str(self.workspace)],
                env=env, stdout=out, stderr=subprocess.STDOUT, cwd="/",
            )  # fmt: skip

    def ready(self, start: float) -> float:
        """Seconds from ``start`` to /healthz through this wrapper."""
        return wait_healthy(self.address, start, self.process, self.log)

    def stop(self) -> None:
        """SIGTERM, as JSP stops it; the container goes with it."""
        if self.process is not None:
            terminate(self.process, self.name)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def terminate(process: subprocess.Popen[bytes], container: str) -> None:
    """SIGTERM (a wrapper, or the Jupyter that runs one, stops its container), SIGKILL after
    60 s; then the container is removed whatever happened."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)


def finish(folder: Path) -> None:
    """Remove a benchmark's folder and make the base image again, for the builds that follow."""
    clean(folder)
    try:
        engine_script()
    except BenchError as exc:  # not in place of what failed before
        say(f"could not make the base image again: {exc}")


def container_memory(name: str) -> int:
    """The container's memory use in bytes, as ``docker stats`` reports it."""
    done = run(["docker", "stats", "--no-stream", "--format", "{{json .}}", name], timeout=60)
    usage = json.loads(done.stdout)["MemUsage"].split("/")[0].strip()
    units = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "kB": 1000, "MB": 1000**2, "GB": 1000**3}
    for unit in sorted(units, key=len, reverse=True):
        if usage.endswith(unit):
            return int(float(usage[: -len(unit)]) * units[unit])
    raise BenchError(f"cannot read docker stats memory: {usage!r}")


# --- the report ------------------------------------------------------------------


@dataclass
class Row:
    """One measured figure: its runs, the baseline's runs, and the target it answers."""

    name: str
    runs: list[float]
    unit: str = "s"
    baseline: Optional[list[float]] = None
    target: str = ""
    met: Optional[bool] = None

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def ratio(self) -> Optional[float]:
        if not self.baseline:
            return None
        base = statistics.median(self.baseline)
        return self.median / base if base else None


def fmt(value: float, unit: str) -> str:
    """``value`` in ``unit`` for the table (bytes shown in MB)."""
    if unit == "B":
        return f"{value / 1e6:,.0f} MB"
    if unit == "s":
        return f"{value:.2f} s"
    return f"{value:g} {unit}".strip()


def table(rows: Sequence[Row]) -> str:
    """The results as a Markdown table."""
    lines = ["| measure | median | runs | baseline (median) | ratio | target | met |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in rows:
        runs = ", ".join(fmt(v, row.unit) for v in row.runs) if 1 < len(row.runs) <= 6 else ""
        runs = runs or (f"{len(row.runs)} runs" if len(row.runs) > 1 else "")
        base = fmt(statistics.median(row.baseline), row.unit) if row.baseline else ""
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else ""
        met = "" if row.met is None else ("yes" if row.met else "**no**")
        median = fmt(row.median, row.unit)
        lines.append(f"| {row.name} | {median} | {runs} | {base} | {ratio} | {row.target} | {met} |")
    return "\n".join(lines)


def machine() -> str:
    """One line on where the figures come from."""
    cpus = os.cpu_count() or 0
    mem = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) // 1024**2
    engine = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True,
                            text=True, check=False).stdout.strip()  # fmt: skip
    return f"{time.strftime('%Y-%m-%d')}, {cpus} CPUs, {mem} GiB RAM, Docker {engine or '?'}"


def clean(path: Path) -> None:
    """Remove ``path`` (a folder or a file) if it is there."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()
