"""The lifecycle hooks' real work, as the notebook user: ``python -m runtime.lifecycle COMMAND``.

``lifecycle/on-create.sh`` and ``on-start.sh`` (root, pasted into the console) install the
project and hand over here. ``create`` and ``start`` do the same idempotent work, so either
hook alone is enough and either order works (SageMaker runs both on the first boot):

1. now, in seconds, before Jupyter starts: mark the setup ``running`` for the host hint,
   install the card's glue into JupyterSystemEnv (recreated at every start: a card
   registered now shows without a Jupyter restart), write the hint block into the recreated
   ``~/.bashrc``, and keep the hook's ``SAGECODE_*`` settings for ``update``;
2. in the background (own session, output in the log on the volume): wait for the engine,
   set up the persistent home, restore the image (load the tar, or rebuild from the cache)
   or on the first boot build it (pull it when ``SAGECODE_IMAGE_REF`` is set), then mark
   ``ready`` or ``failed``. The hook takes the job lock and hands it to the job, so two
   hooks start one job, hence one build. A click on the card meanwhile waits: the
   wrapper's own restore queues on the build lock.

``update`` and ``uninstall``, which a user runs later, are in ``runtime.maintenance``."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from imagebuild.errors import SagecodeError, UsageError
from imagebuild.locking import exclusive
from imagebuild.paths import StatePaths, state_paths
from imagebuild.store import CURRENT
from runtime import jupyter_setup
from runtime.files import PRIVATE_FILE, update_text
from runtime.hint import STATE_FILE, Phase, install_host_hint, mark_setup
from runtime.home import setup_home

HOOKS = ("create", "start")
JUPYTER_ENV_RELPATH = Path("anaconda3", "envs", "JupyterSystemEnv")
LOG_NAME = "lifecycle.log"  # lifecycle/on-*.sh writes to the same file
SETTINGS_FILE = "lifecycle.json"
WHEELHOUSE = "wheelhouse"  # filled by lifecycle/on-*.sh; the glue's wheel is there too
HOOK_LOCK = "hook.lock"
JOB_LOCK = "job.lock"
HOOK_WAIT_S = 50.0  # under the 60 s the shell hook gives this command
ENGINE_POLL_S = 2.0
# -I: import the venv's sagecode, never a same-named folder in the working directory.
ISOLATED = ("-I", "-m")
SYSTEM_SOCKET = Path("/var/run/docker.sock")
ROOTLESS_SOCKET = "/run/user/{uid}/docker.sock"  # where dockerd-rootless.sh listens


@dataclass(frozen=True)
class Settings:
    """Where things are, from ``SAGECODE_*`` variables; the defaults suit a notebook instance."""

    state: StatePaths
    home: Path
    jupyter_env: Path
    imagebuild: tuple[str, ...]
    engine_wait: float = 300.0
    image_ref: str = ""
    container: str = "sagecode"

    @property
    def log(self) -> Path:
        """The hooks' log on the volume."""
        return self.state.logs / LOG_NAME

    @property
    def wrapper(self) -> Path:
        """The drop-in ``code-server`` the card runs."""
        return self.state.venv / "bin" / "code-server"


def load_settings(env: Mapping[str, str]) -> Settings:
    """Read the settings from ``env`` (the only reader)."""
    home = Path(env.get("HOME") or Path.home())
    command = env.get("SAGECODE_IMAGEBUILD")  # tests put a recorder here
    wait = env.get("SAGECODE_ENGINE_WAIT") or "300"
    try:
        engine_wait = float(wait)
    except ValueError:
        raise UsageError(f"SAGECODE_ENGINE_WAIT={wait!r} is not seconds", "e.g. 300") from None
    return Settings(
        state=state_paths(env, home),
        home=home,
        jupyter_env=Path(env.get("SAGECODE_JUPYTER_ENV") or home / JUPYTER_ENV_RELPATH),
        imagebuild=tuple(shlex.split(command)) if command else (sys.executable, *ISOLATED, "imagebuild"),
        engine_wait=engine_wait,
        image_ref=env.get("SAGECODE_IMAGE_REF", ""),
        container=env.get("SAGECODE_CONTAINER") or "sagecode",
    )


def say(tag: str, text: str, log: Optional[Path] = None, *, stamped: bool = False) -> None:
    """A line on stdout (CloudWatch keeps the hooks' output) and in ``log``, time-stamped."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"{stamp} " * stamped + f"sagecode {tag}: {text}", flush=True)
    if log is not None:
        with log.open("a") as out:
            out.write(f"{stamp} sagecode {tag}: {text}\n")


# --- the hook: quick steps, then the background job -------------------------------------


def register_glue(s: Settings, env: Mapping[str, str]) -> str:
    """Install the card's glue into the Jupyter environment (a no-op when already there)."""
    if not (s.jupyter_env / "bin" / "python").exists():
        return f"no Jupyter environment at {s.jupyter_env} (set SAGECODE_JUPYTER_ENV): no card"
    wheels = sorted((s.state.root / WHEELHOUSE).glob("sagecode_jupyter-*.whl"))
    done = jupyter_setup.install(
        s.jupyter_env, s.wrapper, wheel=wheels[-1] if wheels else None, cache_dir=s.state.root / "wheels"
    )
    return f"launcher card {'registered' if done.changed else 'already registered'} in {s.jupyter_env}"


def write_hint(s: Settings, env: Mapping[str, str]) -> str:
    """The host terminal's hint block in ``~/.bashrc``."""
    bashrc = s.home / ".bashrc"
    return f"terminal hint {'written to' if install_host_hint(bashrc, s.state) else 'already in'} {bashrc}"


def save_settings(s: Settings, env: Mapping[str, str]) -> str:
    """Keep the hook's ``SAGECODE_*`` settings on the volume for ``update`` and ``uninstall``."""
    text = json.dumps({k: v for k, v in sorted(env.items()) if k.startswith("SAGECODE_")}, indent=2)
    update_text(s.state.root / SETTINGS_FILE, lambda _: text + "\n", PRIVATE_FILE)
    return ""


STEPS: tuple[Callable[[Settings, Mapping[str, str]], str], ...] = (register_glue, write_hint, save_settings)


def run_hook(hook: str, env: Mapping[str, str]) -> int:
    """The hook's quick part; 1 when a step failed (the job still runs: the image is needed)."""
    s = load_settings(env)
    s.state.logs.mkdir(parents=True, exist_ok=True)
    failed = False
    with exclusive(s.state.run / HOOK_LOCK, HOOK_WAIT_S):  # one pip into JupyterSystemEnv at a time
        mark_setup(s.state, Phase.RUNNING, s.log)  # first: the file still says how the last boot ended
        for step in STEPS:
            try:
                text = step(s, env)
            except (SagecodeError, OSError) as exc:
                failed = True
                mark_setup(s.state, Phase.FAILED, s.log)
                text = f"{step.__name__.replace('_', ' ')} failed: {exc}"
            if text:
                say(hook, text, s.log)
        say(hook, start_job(hook, s, env), s.log)
    return 1 if failed else 0


def try_lock(path: Path) -> Optional[int]:
    """An open descriptor holding ``path``'s exclusive lock, or None when someone holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def start_job(hook: str, s: Settings, env: Mapping[str, str]) -> str:
    """Start the background job with the job lock, unless a job holds it; say which."""
    fd = try_lock(s.state.run / JOB_LOCK)
    if fd is None:
        return f"the image is already being prepared in the background (log: {s.log})"
    try:
        with s.log.open("ab") as out:
            job = subprocess.Popen(
                [sys.executable, *ISOLATED, "runtime.lifecycle", "job", hook, "--lock-fd", str(fd)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=dict(env),
                cwd="/", start_new_session=True, pass_fds=(fd,),  # like nohup: outlives the hook
            )  # fmt: skip
    finally:
        os.close(fd)  # the job's copy keeps the lock until the job ends
    return f"preparing the image in the background (pid {job.pid}; log: {s.log})"


def run_job(hook: str, env: Mapping[str, str], lock_fd: Optional[int]) -> int:
    """The background part; its stdout is the log."""
    s = load_settings(env)

    def note(text: str) -> None:
        say(f"{hook} job", text, stamped=True)

    if lock_fd is None and try_lock(s.state.run / JOB_LOCK) is None:
        note("another job is running")
        return 1
    try:
        wait_for_engine(s.engine_wait)
        setup_home(s.state.home)
        imagebuild(s, image_args(s), env, note)
    except (SagecodeError, OSError) as exc:
        note(f"failed: {exc}")
        mark_setup(s.state, Phase.FAILED, s.log)
        return 1
    mark_ready(s.state)
    note("ready")
    return 0


def image_args(s: Settings) -> list[str]:
    """``restore`` when an image was saved (or is to be pulled), else ``build``."""
    saved = (s.state.images / CURRENT).exists()
    return ["restore" if saved or s.image_ref else "build", "--state-dir", str(s.state.root)]


def imagebuild(s: Settings, args: Sequence[str], env: Mapping[str, str], note: Callable[[str], None]) -> None:
    """Run ``python -m imagebuild ARGS`` with its output in ours; a failure raises."""
    command = [*s.imagebuild, *args]
    note("running " + shlex.join(command))
    done = subprocess.run(command, env=dict(env), cwd="/", check=False)
    if done.returncode:
        raise SagecodeError(f"imagebuild {args[0]} exited with status {done.returncode}", "see above")


def wait_for_engine(seconds: float) -> None:
    """Poll ``docker info`` until the engine answers (it may still be starting at boot)."""
    if seconds <= 0:
        return
    deadline = time.monotonic() + seconds
    while subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=60).returncode:
        if time.monotonic() > deadline:
            raise SagecodeError(f"the Docker engine did not answer within {seconds:.0f} s", "start it")
        time.sleep(ENGINE_POLL_S)


def mark_ready(state: StatePaths) -> None:
    """Mark the setup ready, unless a quick step failed this boot: that must stay visible."""
    with contextlib.suppress(OSError):
        if (state.run / STATE_FILE).read_text().startswith(Phase.FAILED.value):
            return
    mark_setup(state, Phase.READY)


# --- the command line ------------------------------------------------------------------


def engine_env(env: Mapping[str, str], uid: int) -> dict[str, str]:
    """``env``, plus the rootless engine's socket when it is the only one: run by root, the hook
    lacks the user's ``DOCKER_HOST`` (root-disabled instances run a rootless engine)."""
    rootless = Path(ROOTLESS_SOCKET.format(uid=uid))
    if env.get("DOCKER_HOST") or SYSTEM_SOCKET.exists() or not rootless.exists():
        return dict(env)
    return {**env, "DOCKER_HOST": f"unix://{rootless}"}


def parser() -> argparse.ArgumentParser:
    """The command line."""
    top = argparse.ArgumentParser(prog="python -m runtime.lifecycle", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", required=True, metavar="{create,start,update,uninstall}")
    for hook in HOOKS:
        sub.add_parser(hook, help=f"the On{hook.capitalize()} hook's work (the same for both)")
    up = sub.add_parser("update", help="rebuild with another code-server; the next launch uses it")
    up.add_argument("version", nargs="?", default="latest", help="X.Y.Z or latest (default)")
    rm = sub.add_parser("uninstall", help="remove what the hooks made (the workspace stays)")
    rm.add_argument("--purge", action="store_true", help="also the editor's home (settings, extensions)")
    rm.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    job = sub.add_parser("job")  # internal: the hook's background part
    job.add_argument("hook", choices=HOOKS)
    job.add_argument("--lock-fd", type=int)
    return top


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run a command; errors are one line on stderr and exit status 2."""
    args = parser().parse_args(argv)
    env = engine_env(os.environ, os.getuid())
    os.environ.update(env)  # the engine helpers run docker with this process's environment
    try:
        if args.command in HOOKS:
            return run_hook(args.command, env)
        if args.command == "job":
            return run_job(args.hook, env, args.lock_fd)
        from runtime import maintenance  # noqa: PLC0415 - it imports this module

        return maintenance.run(args, env)
    except SagecodeError as exc:
        print(f"sagecode: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
