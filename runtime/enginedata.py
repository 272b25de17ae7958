"""Opt-in: the Docker engine's data on the persistent volume, so a restart loads nothing.

``python -m runtime.enginedata on|off|status`` as root. The lifecycle hook runs ``on`` at
every start when ``SAGECODE_ENGINE_DATA=volume``: it points dockerd's ``data-root`` (and
containerd's ``root`` when Docker keeps its images in containerd) at folders under
``~/SageMaker/.sagecode/engine`` and restarts the daemons, before anything uses them. The
images of the last session are then already in the engine, and the editor starts in about
a second instead of loading its tar. The price is disk: the engine keeps the unpacked image
beside its compressed layers (2.8 GB for the full image), on a volume that is 5 GB by
default, so ``on`` refuses unless the volume has room, and never moves a ``data-root``
someone else configured.

The way back: ``off`` (restores the root volume's folders; ``--purge`` then deletes the
engine's data from the volume); on an instance, not setting the variable is enough, since
``/etc`` is recreated at every start, and ``off --purge`` frees the space.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from imagebuild.cache import dir_bytes
from imagebuild.errors import EngineError, SagecodeError, UsageError
from runtime.container import Containers
from runtime.engineinfo import EngineMode, engine_mode
from runtime.files import update_text

DAEMON_JSON = Path("/etc/docker/daemon.json")
CONTAINERD_TOML = Path("/etc/containerd/config.toml")
DEFAULT_DATA_ROOT = "/var/lib/docker"
DEFAULT_CONTAINERD_ROOT = "/var/lib/containerd"
RESTART_ENV = "SAGECODE_ENGINE_RESTART"
MIN_FREE_GB = 6.0  # the full image's engine data (2.8 GB) twice over, during an update
KEEP_FREE_GB = 1.0  # once the data is there: room for the next session's writes
READY_S = 60.0
_TOP_ROOT = re.compile(r'^root\s*=\s*"([^"]*)"\s*$')


@dataclass(frozen=True)
class Places:
    """Where the engine's data goes on the volume."""

    volume: Path

    @property
    def docker(self) -> Path:
        """dockerd's data-root."""
        return self.volume / "docker"

    @property
    def containerd(self) -> Path:
        """containerd's root (images and snapshots on the containerd store)."""
        return self.volume / "containerd"


def with_data_root(config: Mapping[str, Any], target: Path) -> dict[str, Any]:
    """daemon.json with ``data-root`` at ``target``; refuses to move one set elsewhere."""
    current = config.get("data-root")
    if current not in (None, DEFAULT_DATA_ROOT, str(target)):
        raise UsageError(f"/etc/docker/daemon.json already sets data-root to {current}",
                         "leave SAGECODE_ENGINE_DATA unset: this instance's engine is managed elsewhere")
    return {**config, "data-root": str(target)}


def without_data_root(config: Mapping[str, Any], target: Path) -> dict[str, Any]:
    """daemon.json without our ``data-root`` (another one is left alone)."""
    return {k: v for k, v in config.items() if not (k == "data-root" and v == str(target))}


def containerd_root(text: str) -> Optional[str]:
    """The top-level ``root`` of a containerd config.toml (before its first table)."""
    for line in text.splitlines():
        if line.lstrip().startswith("["):
            return None
        found = _TOP_ROOT.match(line.strip())
        if found:
            return found.group(1)
    return None


def with_containerd_root(text: str, target: Optional[Path]) -> str:
    """config.toml with its top-level ``root`` at ``target`` (``None``: the line removed)."""
    current = containerd_root(text)
    if target is not None and current not in (None, DEFAULT_CONTAINERD_ROOT, str(target)):
        raise UsageError(f"{CONTAINERD_TOML} already sets root to {current}",
                         "leave SAGECODE_ENGINE_DATA unset: this instance's engine is managed elsewhere")
    lines = text.splitlines()
    top = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("[")), len(lines))
    kept = [ln for ln in lines[:top] if not _TOP_ROOT.match(ln.strip())]
    if target is not None:
        kept.append(f'root = "{target}"')
    return "\n".join(kept + lines[top:]) + "\n"


def containerd_store(info: Mapping[str, Any]) -> bool:
    """Docker keeps its images in containerd (the containerd snapshotter is on)."""
    return any(pair[:1] == ["driver-type"] and "containerd.snapshotter" in str(pair[1:])
               for pair in info.get("DriverStatus") or ())


def room(volume: Path, populated: bool, min_free_gb: float) -> None:
    """Refuse when the volume cannot hold the engine's data beside the user's files."""
    probe = volume
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free / 1e9
    need = KEEP_FREE_GB if populated else min_free_gb
    if free < need:
        raise UsageError(f"the volume has {free:.1f} GB free; the engine's data needs {need:.1f} GB",
                         "grow the notebook's volume, or leave SAGECODE_ENGINE_DATA unset")


def _json(config: Mapping[str, Any]) -> str:
    return json.dumps(config, indent=2) + "\n"


def _update(path: Path, transform: Callable[[str], str]) -> bool:
    """``update_text`` (atomic, mode kept) in a folder created when missing (/etc/containerd)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return update_text(path, transform)


def _restart(command: Sequence[str], target: str) -> None:
    print(f"sagecode: restarting the engine: {shlex.join(command)}", flush=True)
    subprocess.run(list(command), check=True, timeout=300)
    deadline = time.monotonic() + READY_S
    while True:
        try:
            if Containers().info().get("DockerRootDir", "").startswith(target):
                return
        except EngineError:
            pass  # not up yet
        if time.monotonic() > deadline:
            raise EngineError(f"the engine did not come back on {target} within {READY_S:.0f} s",
                              "see its log (journalctl -u docker); `off` restores the default")
        time.sleep(1)


def restart_command(env: Mapping[str, str], containerd: bool) -> list[str]:
    """``SAGECODE_ENGINE_RESTART`` if set, else systemd's restart of the daemons moved."""
    if env.get(RESTART_ENV):
        return shlex.split(env[RESTART_ENV])
    return ["systemctl", "restart", *(["containerd"] if containerd else []), "docker"]


def on(places: Places, env: Mapping[str, str], min_free_gb: float = MIN_FREE_GB,
       daemon_json: Path = DAEMON_JSON, containerd_toml: Path = CONTAINERD_TOML) -> str:
    """Move the engine's data to the volume (idempotent); returns what it did."""
    info = Containers().info()
    if engine_mode(info, env.get("DOCKER_HOST", "")) is EngineMode.ROOTLESS:
        raise UsageError("this is a rootless engine: its data is in the user's home, not movable here",
                         "leave SAGECODE_ENGINE_DATA unset")
    store = containerd_store(info)
    populated = places.docker.is_dir() and any(places.docker.iterdir())
    room(places.volume, populated, min_free_gb)
    changed = _update(daemon_json, lambda old: _json(with_data_root(json.loads(old or "{}"), places.docker)))
    if store:
        fresh = "" if containerd_toml.exists() else "version = 2\n"
        changed = _update(containerd_toml,
                          lambda old: with_containerd_root(old or fresh, places.containerd)) or changed
    for folder in (places.docker, *([places.containerd] if store else [])):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o711)
    if not changed and str(info.get("DockerRootDir", "")).startswith(str(places.docker)):
        return f"the engine's data is already on the volume ({places.volume})"
    _restart(restart_command(env, store), str(places.docker))
    return f"the engine's data is now on the volume ({places.volume})"


def off(places: Places, env: Mapping[str, str], purge: bool = False,
        daemon_json: Path = DAEMON_JSON, containerd_toml: Path = CONTAINERD_TOML) -> str:
    """Back to the root volume's folders; ``purge`` deletes the data left on the volume."""
    changed = False
    if daemon_json.exists():
        changed = _update(daemon_json,
                          lambda old: _json(without_data_root(json.loads(old or "{}"), places.docker)))
    moved = containerd_toml.exists() and (containerd_root(containerd_toml.read_text())
                                          == str(places.containerd))
    if moved:
        changed = _update(containerd_toml, lambda old: with_containerd_root(old, None)) or changed
    if changed:
        _restart(restart_command(env, moved), DEFAULT_DATA_ROOT)
    if purge and places.volume.exists():
        if str(Containers().info().get("DockerRootDir", "")).startswith(str(places.volume)):
            raise UsageError("the engine still uses the volume", "run `off` first")
        shutil.rmtree(places.volume)
        return f"the engine's data is on the root volume; {places.volume} deleted"
    kept = f" ({places.volume} kept)" if places.volume.exists() else ""
    return f"the engine's data is on the root volume{kept}"


def status(places: Places) -> str:
    """Where the engine keeps its data, and how much the volume holds."""
    where = str(Containers().info().get("DockerRootDir", "?"))
    if not places.volume.exists():
        return f"the engine's data is in {where}; none on the volume"
    used = dir_bytes(places.volume)
    return f"the engine's data is in {where}; {used / 1e9:.1f} GB on the volume ({places.volume})"


def parser() -> argparse.ArgumentParser:
    """The command line."""
    top = argparse.ArgumentParser(prog="python -m runtime.enginedata", description=__doc__.splitlines()[0])
    top.add_argument("command", choices=("on", "off", "status"))
    top.add_argument("--volume", type=Path, required=True, help="the folder on the persistent volume")
    top.add_argument("--min-free-gb", type=float, default=MIN_FREE_GB,
                     help=f"free space `on` needs before the first move (default {MIN_FREE_GB:g})")
    top.add_argument("--purge", action="store_true", help="off: delete the engine's data from the volume")
    return top


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run a command as root; errors are one line on stderr and exit status 2."""
    args = parser().parse_args(argv)
    try:
        if os.geteuid() != 0:
            raise UsageError("moving the engine's data needs root",
                             "run it with sudo (the lifecycle hook does)")
        places = Places(args.volume.absolute())
        if args.command == "on":
            print(f"sagecode: {on(places, os.environ, args.min_free_gb)}")
        elif args.command == "off":
            print(f"sagecode: {off(places, os.environ, args.purge)}")
        else:
            print(f"sagecode: {status(places)}")
    except (SagecodeError, subprocess.CalledProcessError, OSError) as exc:
        print(f"sagecode: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
