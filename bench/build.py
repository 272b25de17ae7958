"""Builds: a code-server version bump after a restart with the persisted cache, against a cold build.

- **seed**: the engine wiped, a fresh state folder, version v0 built with the cache exported;
- **no-op rebuild**: the same command again (nothing changed);
- **bump after a restart** (ours): the engine wiped, the state folder kept, the next
  code-server version built; repeated through v1..vN, so the footprint after N bumps is
  what a user who updated N times keeps;
- **cold** (the predecessor's rebuild after a restart): the engine wiped, the same version
  built with ``--no-cache`` and no cache export, in a throwaway state folder.

The layer set is ``base,node,code-server,entrypoint`` by default (``--layers all`` for every
layer); see the README on why the full image's cache is not exported on this engine.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import BASE_IMAGE, CA_BUNDLE, BenchError, Row, clean, dir_bytes, run, say, wipe_engine
from imagebuild.config import BuildConfig

# Every layer that has nothing to do with code-server is off in the default set.
CODE_SERVER_SET = ("--without", "shell,awscli,mise,agents,editor")


def versions(count: int) -> list[str]:
    """The newest ``count`` stable code-server releases on npm, oldest first."""
    npm = shutil.which("npm")
    if npm is None:
        raise BenchError("npm is not on PATH: it lists the code-server versions to build")
    out = run([npm, "view", "code-server", "versions", "--json"], timeout=120).stdout
    stable = [v for v in json.loads(out) if all(part.isdigit() for part in v.split("."))]
    if len(stable) < count:
        raise BenchError(f"npm lists only {len(stable)} stable code-server versions")
    return stable[-count:]


def build(state: Path, version: str, layers: tuple[str, ...], cold: bool = False) -> float:
    """``python -m imagebuild`` for ``version``: seconds (cold: no cache used or exported)."""
    argv = [sys.executable, "-m", "imagebuild", "--state-dir", str(state), "--base-image", BASE_IMAGE,
            "--code-server-source", "npm", "--code-server", version, *layers, "-q"]  # fmt: skip
    if Path(CA_BUNDLE).is_file():
        argv += ["--ca-bundle", CA_BUNDLE]
    env = dict(os.environ, SAGECODE_CACHE_MODE="off" if cold else "min")
    if cold:
        argv.append("--no-cache")
    start = time.monotonic()
    run(argv, env=env, timeout=7200)
    return time.monotonic() - start


def bench(rounds: int, bumps: int, layers: tuple[str, ...]) -> list[Row]:
    """Seed, no-op rebuilds, ``bumps`` version bumps after wipes, ``rounds`` cold baselines."""
    chain = versions(bumps + 1)
    say(f"code-server versions: {' -> '.join(chain)}")
    state = Path(tempfile.mkdtemp(prefix="sagecode-bench-build-", dir="/var/tmp"))
    try:
        wipe_engine()
        say(f"seed: {chain[0]} on a wiped engine, cache exported")
        seed = build(state, chain[0], layers)
        noop = []
        for n in range(rounds):
            say(f"no-op rebuild {n + 1}/{rounds}")
            noop.append(build(state, chain[0], layers))
        bumped = []
        for version in chain[1:]:
            wipe_engine()
            say(f"bump to {version} after a wipe, cache kept")
            bumped.append(build(state, version, layers))
            say(f"bump to {version}: {bumped[-1]:.0f} s")
        footprint = dir_bytes(state)
        tars = len(list((state / "images").glob("*.tar")))
        tar_bytes = dir_bytes(state / "images")
        cache_bytes = dir_bytes(state / "cache")
        cold = []
        for version in chain[1 : rounds + 1]:
            wipe_engine()
            scratch = Path(tempfile.mkdtemp(prefix="sagecode-bench-cold-", dir="/var/tmp"))
            try:
                say(f"cold (predecessor's rebuild): {version} with --no-cache")
                cold.append(build(scratch, version, layers, cold=True))
                say(f"cold {version}: {cold[-1]:.0f} s")
            finally:
                clean(scratch)
    finally:
        clean(state)
        subprocess.run(["docker", "buildx", "prune", "-af"], capture_output=True, check=False)
    cap = BuildConfig.cache_cap_mb * 1024 * 1024
    fifth = statistics.median(cold) * 0.2
    return [
        Row(f"rebuild after a code-server bump, engine wiped, cache kept ({len(bumped)} bumps)", bumped,
            baseline=cold, target=f"<= 0.2x ({fifth:.0f} s)", met=statistics.median(bumped) <= fifth),
        Row("  cold build with --no-cache (the predecessor's rebuild after a restart)", cold),
        Row("  first build on a wiped engine, cache exported (seed)", [seed]),
        Row("no-op rebuild", noop, target="<= 10 s", met=statistics.median(noop) <= 10),
        Row(f"persistent footprint after {len(bumped)} bumps: everything", [float(footprint)], unit="B",
            target=f"<= one tar + cap ({cap / 1e6:,.0f} MB)", met=tars == 1 and cache_bytes <= cap),
        Row(f"  of which saved tars ({tars} kept)", [float(tar_bytes)], unit="B"),
        Row("  of which build cache", [float(cache_bytes)], unit="B"),
    ]
