"""Builds: a version bump after a restart with the persisted (or registry) cache, against a cold build.

- **seed**: the engine wiped, a fresh state folder, version v0 built with the cache exported
  (``mode=max``: the builder stages' steps too);
- **no-op rebuild**: the same command again (nothing changed);
- **bump after a restart** (ours): the engine wiped, the state folder kept, the next
  version built; repeated through v1..vN, so the footprint after N bumps is what a user
  who updated N times keeps. With a registry cache (``--cache-ref``) the local cache is
  deleted too: a second machine that has only the registry;
- **bump with the engine's data kept** (the opt-in ``SAGECODE_ENGINE_DATA=volume``, local
  cache only): ``runtime.enginedata on`` moves the engine's data into the state folder, as
  the lifecycle hook does, one build of vN fills it, then for each of ``rounds`` other
  versions (vN is npm's newest, so v(N-1), v(N-2)... back down: versions that engine has
  not built) dockerd and containerd are restarted with their data in place, as that mode's
  restart does, and the version is built with the default cache mode (which exports no
  second copy of the cache there); ``enginedata off --purge`` puts the engine back;
- **cold** (the predecessor's rebuild after a restart): the engine wiped, ``rounds`` of
  v1..vN built with ``--no-cache`` and no cache export, in a throwaway state folder.

Where GitHub is unreachable the chain starts no earlier than :data:`NPM_WITHOUT_GITHUB`.

``build`` bumps code-server in ``base,node,code-server,entrypoint`` (``--layers all``: every
layer; see the README on the full image's cache on this engine); ``registry`` makes the same
bumps through a local registry's cache, on a machine with no local cache.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from bench.common import (
    BASE_IMAGE,
    CA_BUNDLE,
    BenchError,
    Row,
    clean,
    dir_bytes,
    free_port,
    restart_engine,
    run,
    say,
    wipe_engine,
)
from imagebuild.config import BuildConfig
from imagebuild.errors import VersionError
from imagebuild.github import GITHUB_API
from imagebuild.layers.code_server import NPM_WITHOUT_GITHUB
from imagebuild.store import CURRENT
from imagebuild.versions import NpmClient, semver_key


@dataclass(frozen=True)
class Bump:
    """What a benchmark bumps: its flag, its npm package, the layers it builds (and their name)."""

    flag: str
    package: str
    layers: tuple[str, ...]
    source: str = "npm"
    label: str = "code-server set"


# code-server with only what it needs (node), or every layer (what `python -m imagebuild` builds).
CODE_SERVER = Bump("--code-server", "code-server", ("--without", "shell,awscli,mise,agents,editor"))
CODE_SERVER_ALL = Bump("--code-server", "code-server", (), label="full image")
# code-server from its GitHub release tarball (a fake GitHub here: bench/fakegithub.py).
CODE_SERVER_GITHUB = Bump("--code-server", "code-server", CODE_SERVER.layers, "github")


def github_reachable() -> bool:
    """True when GitHub's API (which those install scripts call) answers at all within 5 s."""
    try:
        urllib.request.urlopen(f"{GITHUB_API}/", timeout=5).close()  # noqa: S310 (an https constant)
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False
    return True


def versions(package: str, oldest: str = "") -> list[str]:
    """The stable releases of ``package`` on npm (none older than ``oldest``), oldest first."""
    try:
        stable = NpmClient(timeout_s=120).stable_versions(package)
    except VersionError as exc:
        raise BenchError(f"{exc.what}: {exc.fix}") from None
    return [v for v in stable if semver_key(v) >= semver_key(oldest)] if oldest else stable


def buildable(package: str) -> list[str]:
    """:func:`versions` that build from npm on this machine: on one without GitHub, code-server
    from :data:`NPM_WITHOUT_GITHUB` on."""
    oldest = NPM_WITHOUT_GITHUB if package == "code-server" and not github_reachable() else ""
    return versions(package, oldest)


def newest(every: list[str], count: int, flag: str = "--bumps") -> list[str]:
    """The newest ``count`` of ``every`` (oldest first); too few is an error naming ``flag``."""
    if len(every) < count:
        span = f" ({every[0]} to {every[-1]}; without GitHub, older ones cannot)" if every else ""
        raise BenchError(f"only {len(every)} code-server versions build here{span}: lower {flag}")
    return every[-count:]


def walk_back(every: list[str], count: int) -> list[str]:
    """``count`` versions to build after the newest of ``every``, which npm has nothing newer
    than: the ones before it, newest first (versions the engine has not built since its fill)."""
    newest(every, count + 1, "--rounds")
    return every[-2 : -count - 2 : -1]


def cycle(chain: list[str], count: int) -> list[str]:
    """``count`` versions from ``chain``, starting again at its start when it runs out."""
    return [chain[n % len(chain)] for n in range(count)]


def build(state: Path, bump: Bump, version: str, cache_ref: str = "", *, cold: bool = False,
          cache_mode: str = "max", extra_env: Optional[dict[str, str]] = None) -> float:
    """``python -m imagebuild`` with ``version`` of ``bump``: seconds (cold: no cache used or exported)."""
    argv = [sys.executable, "-m", "imagebuild", "--state-dir", str(state), "--base-image", BASE_IMAGE,
            "--code-server-source", bump.source, bump.flag, version, *bump.layers, "-q"]  # fmt: skip
    if Path(CA_BUNDLE).is_file():
        argv += ["--ca-bundle", CA_BUNDLE]
    if cache_ref and not cold:
        argv += ["--cache-ref", cache_ref]
    # max: the builder stages' steps are cached too (min keeps only the final image's layers)
    env = dict(os.environ, **(extra_env or {}), SAGECODE_CACHE_MODE="off" if cold else cache_mode)
    if cold:
        argv.append("--no-cache")
    start = time.monotonic()
    run(argv, env=env, timeout=7200)
    return time.monotonic() - start


def kept_bumps(state: Path, bump: Bump, last: str, chain: list[str]) -> tuple[list[float], int]:
    """The opt-in mode: the engine's data in ``state``, filled with ``last``, then each of
    ``chain`` built after a daemon restart: seconds per bump, and the engine's bytes after."""
    kept = []
    with engine_data_in(state / "engine"):
        say(f"engine data moved to {state / 'engine'}; filling it with {last}")
        build(state, bump, last, cache_mode="auto")
        for version in chain:
            restart_engine()
            kept.append(build(state, bump, version, cache_mode="auto"))
            say(f"bump to {version} after a daemon restart, engine data kept: {kept[-1]:.0f} s")
        held = dir_bytes(state / "engine")
    return kept, held


def cold_builds(bump: Bump, chain: list[str], extra_env: Optional[dict[str, str]] = None) -> list[float]:
    """The predecessor's rebuild after a restart: each of ``chain`` on a wiped engine, no cache."""
    cold = []
    for version in chain:
        wipe_engine()
        scratch = Path(tempfile.mkdtemp(prefix="sagecode-bench-cold-", dir="/var/tmp"))
        try:
            cold.append(build(scratch, bump, version, cold=True, extra_env=extra_env))
            say(f"cold (--no-cache) {version}: {cold[-1]:.0f} s")
        finally:
            clean(scratch)
    return cold


@contextlib.contextmanager
def engine_data_in(volume: Path) -> Iterator[None]:
    """The opt-in mode for real: ``runtime.enginedata on`` with ``volume``, ``off --purge`` after."""
    restart = f"{shlex.quote(sys.executable)} -c 'import bench.common as c; c.restart_engine()'"
    env = dict(os.environ, SAGECODE_ENGINE_RESTART=restart)
    enginedata = [sys.executable, "-m", "runtime.enginedata"]
    run([*enginedata, "on", "--volume", str(volume), "--min-free-gb", "1"], env=env, timeout=900)
    try:
        yield
    finally:
        run([*enginedata, "off", "--purge", "--volume", str(volume)], env=env, timeout=900)


@contextlib.contextmanager
def local_registry() -> Iterator[str]:
    """A distribution registry on 127.0.0.1 (Debian's docker-registry), storing in a temp dir."""
    binary = shutil.which("docker-registry")
    if binary is None:
        raise BenchError("docker-registry is not installed (docker-engine.sh installs it)")
    root = Path(tempfile.mkdtemp(prefix="sagecode-bench-registry-", dir="/var/tmp"))
    addr = f"127.0.0.1:{free_port()}"
    (root / "config.yml").write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: {addr}\nlog:\n  level: warn\n"
    )
    process = subprocess.Popen([binary, "serve", str(root / "config.yml")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not healthy_registry(addr):
            if time.monotonic() > deadline:
                raise BenchError("the local registry did not answer in 20 s")
            time.sleep(0.2)
        yield addr
    finally:
        process.terminate()
        process.wait(10)
        clean(root)


def healthy_registry(addr: str) -> bool:
    """The registry answers its API root."""
    try:
        with urllib.request.urlopen(f"http://{addr}/v2/", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def bench(rounds: int, bumps: int, bump: Bump, cache_ref: str = "") -> list[Row]:
    """Seed, no-op rebuilds, ``bumps`` version bumps after wipes, ``rounds`` cold baselines."""
    # the local-cache run adds `rounds` bumps with the engine's data kept (the opt-in mode)
    every = buildable(bump.package)
    chain = newest(every, bumps + 1)
    kept_chain = [] if cache_ref else walk_back(every, rounds)
    where = f"registry cache {cache_ref}" if cache_ref else "cache dir kept"
    say(f"{bump.package} versions: {' -> '.join(chain + kept_chain)} ({where})")
    state = Path(tempfile.mkdtemp(prefix="sagecode-bench-build-", dir="/var/tmp"))
    try:
        wipe_engine()
        say(f"seed: {chain[0]} on a wiped engine, cache exported")
        seed = build(state, bump, chain[0], cache_ref)
        noop = []
        for n in range(rounds):
            say(f"no-op rebuild {n + 1}/{rounds}")
            noop.append(build(state, bump, chain[0], cache_ref))
        bumped = []
        for version in chain[1:]:
            wipe_engine()
            if cache_ref:  # a second machine: only the registry has the cache
                clean(state / "cache")
            bumped.append(build(state, bump, version, cache_ref))
            say(f"bump to {version} after a wipe ({where}): {bumped[-1]:.0f} s")
        footprint = dir_bytes(state)
        tars = len([p for p in (state / "images").glob("*.json") if p.name != CURRENT])
        tar_bytes = dir_bytes(state / "images")
        cache_bytes = dir_bytes(state / "cache")
        kept, held = kept_bumps(state, bump, chain[-1], kept_chain) if kept_chain else ([], 0)
        cold = cold_builds(bump, cycle(chain[1:], rounds))
    finally:
        clean(state)
        subprocess.run(["docker", "buildx", "prune", "-af"], capture_output=True, check=False)
    cap = BuildConfig.cache_cap_mb * 1024 * 1024
    fifth = statistics.median(cold) * 0.2
    name = f"{bump.package} bump ({bump.label})"
    rows = [
        Row(f"rebuild after a {name}, engine wiped, {where} ({len(bumped)} bumps)", bumped,
            baseline=cold, target=f"<= 0.2x ({fifth:.0f} s)", met=statistics.median(bumped) <= fifth),
        Row(f"  cold build of the same {bump.package} versions with --no-cache (predecessor)", cold),
        Row("  first build on a wiped engine, cache exported (seed)", [seed]),
        Row(f"no-op rebuild ({bump.label})", noop, target="<= 10 s", met=statistics.median(noop) <= 10),
    ]
    if kept:
        what = (f"rebuild after a {name}, daemons restarted with the engine's data kept "
                f"(the opt-in SAGECODE_ENGINE_DATA=volume), {where} ({len(kept)} bumps)")
        rows[2:2] = [
            Row(what, kept, baseline=cold, target=f"<= 0.2x ({fifth:.0f} s)",
                met=statistics.median(kept) <= fifth),
            Row(f"  engine data on the volume after those {len(kept)} bumps (images and build cache)",
                [float(held)], unit="B"),
        ]
    if not cache_ref:
        rows += [
            Row(f"persistent footprint after {len(bumped)} bumps", [float(footprint)], unit="B",
                target=f"<= one saved image + cap ({cap / 1e6:,.0f} MB)",
                met=tars == 1 and cache_bytes <= cap),
            Row(f"  of which saved images ({tars} kept)", [float(tar_bytes)], unit="B"),
            Row("  of which build cache", [float(cache_bytes)], unit="B"),
        ]
    return rows
