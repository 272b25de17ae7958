"""Where the tool keeps its state: on the persistent volume when there is one.

On a notebook instance only ``~/SageMaker`` survives a stop/start, so everything that
must outlive a restart (the saved image, the build cache, the container's home) lives
in ``~/SageMaker/.sagecode``. Elsewhere the per-user state directory is used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

STATE_DIR_NAME = ".sagecode"


def default_state_dir(env: Mapping[str, str], home: Path) -> Path:
    """The persistent state directory: ``SAGECODE_STATE_DIR``, the SageMaker volume, or XDG."""
    if env.get("SAGECODE_STATE_DIR"):
        return Path(env["SAGECODE_STATE_DIR"]).expanduser()
    sagemaker = home / "SageMaker"
    if sagemaker.is_dir():
        return sagemaker / STATE_DIR_NAME
    xdg = env.get("XDG_STATE_HOME") or str(home / ".local" / "state")
    return Path(xdg) / "sagecode"


@dataclass(frozen=True)
class StatePaths:
    """The layout of the persistent state directory; every path derives from ``root``."""

    root: Path

    @property
    def images(self) -> Path:
        """Saved images (the OCI layout folder ``oci/``, tars) and their manifests."""
        return self.root / "images"

    @property
    def cache(self) -> Path:
        """BuildKit's local build cache (``type=local``)."""
        return self.root / "cache"

    @property
    def home(self) -> Path:
        """The container user's home: settings, extensions, shell history."""
        return self.root / "home"

    @property
    def logs(self) -> Path:
        """Logs of builds, restores, hooks and the wrapper."""
        return self.root / "logs"

    @property
    def venv(self) -> Path:
        """The project's own virtual environment (its ``bin/code-server`` is the wrapper)."""
        return self.root / "venv"

    @property
    def run(self) -> Path:
        """Locks, heartbeats and other small run-time files."""
        return self.root / "run"


def state_paths(env: Mapping[str, str] | None = None, home: Path | None = None) -> StatePaths:
    """The state layout for this user, from the environment."""
    env = os.environ if env is None else env
    return StatePaths(default_state_dir(env, home or Path.home()))
