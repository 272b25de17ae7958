"""What a user runs after the hooks: ``python -m runtime.lifecycle update|uninstall``.

``update [VERSION]`` builds and saves the image with another code-server (default
``latest``) with the settings the hooks ran with, and makes it current. Nothing running is
stopped: the wrapper reads ``images/current.json`` at each launch, so an open editor keeps
its image and the next launch runs the new one.

``uninstall`` removes what the hooks made: the launcher card's glue (from the Jupyter
environment), the terminal hint block, the editor container and the ``sagecode`` images
in the engine, and in the state folder the venv, the saved tars, the build cache, the
wheels, the logs and the run-time files.
Kept: the workspace (it is the user's, never sagecode's) and the editor's home (settings,
extensions, history, keys) unless ``--purge``. The hooks stay attached in the SageMaker
console until the user detaches them: the next start would install sagecode again.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Callable

from imagebuild.errors import SagecodeError, UsageError
from imagebuild.paths import state_paths
from imagebuild.store import ImageStore
from runtime import jupyter_setup
from runtime.container import Containers
from runtime.files import update_text
from runtime.lifecycle import (
    JOB_LOCK,
    SETTINGS_FILE,
    WHEELHOUSE,
    Settings,
    imagebuild,
    load_settings,
    say,
    try_lock,
)
from runtime.rcblock import remove_block

IMAGE_REPO = "sagecode"  # imagebuild's BuildConfig.image_name
ENGINE_SECONDS = 120.0
# What sagecode keeps in the state folder besides the editor's home; the venv goes last,
# since this very command runs from it.
OURS = ("images", "cache", "wheels", WHEELHOUSE, "run", "logs", SETTINGS_FILE, "venv")
Action = tuple[str, Callable[[], object]]


def with_saved(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` over the settings the hooks last ran with, so ``update`` builds as they did."""
    path = state_paths(env, Path(env.get("HOME") or Path.home())).root / SETTINGS_FILE
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        saved = {}
    return {**{k: str(v) for k, v in saved.items()}, **env} if isinstance(saved, dict) else dict(env)


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Run ``update`` or ``uninstall`` (parsed by ``runtime.lifecycle.parser``)."""
    env = with_saved(env)
    if args.command == "update":
        return update(args.version, env)
    return uninstall(load_settings(env), purge=args.purge, dry_run=args.dry_run)


def update(version: str, env: Mapping[str, str]) -> int:
    """Build and save the image with code-server ``version``; the next launch runs it."""
    s = load_settings(env)
    args = ["build", "--state-dir", str(s.state.root), "--code-server", version]
    imagebuild(s, args, env, lambda text: say("update", text))
    current = ImageStore(s.state.images).current()
    name = current.image if current else "the new image"
    say("update", f"{name} is saved and current; the editor runs it from its next launch")
    say("update", "an open editor keeps its image until then: nothing was stopped")
    return 0


def plan(s: Settings, purge: bool) -> list[Action]:
    """What uninstalling removes, in order: each a description and the action."""
    bashrc = s.home / ".bashrc"
    actions: list[Action] = [
        (f"the launcher card's glue in {s.jupyter_env}", lambda: _glue(s.jupyter_env)),
        (f"the terminal hint in {bashrc}", lambda: bashrc.exists() and update_text(bashrc, remove_block)),
        (f"container {s.container} and the {IMAGE_REPO} images", lambda: _engine(s.container)),
    ]
    doomed = [s.state.root] if purge else [s.state.root / name for name in OURS]
    return actions + [(str(path), lambda path=path: _delete(path)) for path in doomed if path.exists()]


def uninstall(s: Settings, *, purge: bool, dry_run: bool) -> int:
    """Remove everything in ``plan``; 1 when something could not be removed."""
    if _job_running(s):
        raise UsageError("the lifecycle job is still running", f"wait for it (see {s.log}), then retry")
    failed = False
    for what, action in plan(s, purge):
        if dry_run:
            say("uninstall", f"would remove {what}")
            continue
        try:
            action()
        except (SagecodeError, OSError) as exc:
            failed = True
            say("uninstall", f"could not remove {what}: {exc}")
        else:
            say("uninstall", f"removed {what}")
    if not purge:
        say("uninstall", f"kept the editor's home {s.state.home} (--purge removes it)")
    say("uninstall", "detach the lifecycle configuration, or the next start installs sagecode again")
    return 1 if failed else 0


def _glue(env_prefix: Path) -> None:
    if (env_prefix / "bin" / "python").exists():
        jupyter_setup.uninstall(env_prefix)


def _engine(container: str) -> None:
    engine = Containers()
    engine.remove(container)
    form = "{{.Repository}}:{{.Tag}}"
    listed = engine.capture(["image", "ls", "--format", form, IMAGE_REPO], ENGINE_SECONDS)
    refs = [ref for ref in listed.stdout.split() if not ref.endswith(":<none>")]
    if refs:
        done = engine.capture(["image", "rm", "--force", *refs], ENGINE_SECONDS)
        if done.returncode:
            raise SagecodeError(f"docker image rm failed: {done.stderr.strip()}", "remove them by hand")


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _job_running(s: Settings) -> bool:
    lock = s.state.run / JOB_LOCK
    if not lock.exists():
        return False
    fd = try_lock(lock)
    if fd is None:
        return True
    os.close(fd)
    return False
