"""Install the Jupyter glue (``jupyter/``, distribution ``sagecode-jupyter``) into a Jupyter env.

The glue is built into a wheel once per content of ``jupyter/`` (cached), installed by the
target environment's own pip with no index and no dependencies (nothing else in that
environment changes), and pointed at the wrapper by a small JSON file in that
environment. Running it twice changes nothing. Jupyter is restarted only when asked:
a restart kills the user's kernels and terminals.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Optional

from imagebuild.errors import UsageError
from imagebuild.paths import state_paths

DEFAULT_ENV = Path("/home/ec2-user/anaconda3/envs/JupyterSystemEnv")
SOURCE = Path(__file__).resolve().parents[1] / "jupyter"
DIST = "sagecode-jupyter"
# Where the glue reads its settings (sagecode_jupyter.settings.CONFIG_RELPATH, kept equal by
# a test): the glue lives in the Jupyter environment, not in this venv, so it is not imported.
CONFIG_RELPATH = Path("etc", "sagecode", "jupyter.json")
UNIT = "jupyter-server"
_BUILD_LEFTOVERS = ("__pycache__", "*.pyc", "build", "dist", "*.egg-info")
# Prints the installed glue's direct_url.json ("" when pip wrote none); fails when absent.
_PROBE = (
    "import importlib.metadata as m, sys; "
    "sys.stdout.write(m.distribution(sys.argv[1]).read_text('direct_url.json') or '')"
)


@dataclass(frozen=True)
class Outcome:
    """What an install or uninstall did."""

    changed: bool
    restart: str = ""  # what happened about restarting Jupyter; empty when not asked


def install(
    env_prefix: Path,
    wrapper: Path,
    *,
    timeout: Optional[float] = None,
    workspace: Optional[Path] = None,
    mode: Optional[str] = None,
    wheel: Optional[Path] = None,
    cache_dir: Optional[Path] = None,
    restart_jupyter: bool = False,
) -> Outcome:
    """Install the glue into ``env_prefix`` and point it at ``wrapper``."""
    python = env_python(env_prefix)
    wheel = (wheel or build_wheel(SOURCE, cache_dir or default_cache_dir())).resolve()
    changed = not installed_from(python, wheel)
    if changed:
        pip(python, "install", "--no-deps", "--no-index", "--force-reinstall", str(wheel))
    settings = config_data(wrapper, timeout=timeout, workspace=workspace, mode=mode)
    changed = write_config(env_prefix / CONFIG_RELPATH, settings) or changed
    return Outcome(changed, restart() if restart_jupyter else "")


def uninstall(env_prefix: Path, *, restart_jupyter: bool = False) -> Outcome:
    """Remove the glue and its config from ``env_prefix``; nothing else there."""
    python = env_python(env_prefix)
    changed = direct_url(python) is not None
    if changed:
        pip(python, "uninstall", "--yes", DIST)
    config = env_prefix / CONFIG_RELPATH
    if config.exists():
        config.unlink()
        changed = True
    if config.parent.is_dir() and not any(config.parent.iterdir()):
        config.parent.rmdir()
    return Outcome(changed, restart() if restart_jupyter else "")


def env_python(env_prefix: Path) -> Path:
    """The environment's interpreter; a ``UsageError`` when ``env_prefix`` has none."""
    python = env_prefix / "bin" / "python"
    if not python.is_file():
        raise UsageError(
            f"{env_prefix} has no bin/python",
            f"pass the Jupyter server's environment, e.g. --env {DEFAULT_ENV}",
        )
    return python


def default_cache_dir() -> Path:
    """Built wheels, on the persistent volume so that later boots build nothing."""
    return state_paths().root / "wheels"


def build_wheel(source: Path, cache_dir: Path) -> Path:
    """The glue's wheel for this content of ``source``, built on first use."""
    target = cache_dir / DIST / source_digest(source)[:12]
    cached = sorted(target.glob("*.whl"))
    if cached:
        return cached[0]
    with tempfile.TemporaryDirectory(prefix="sagecode-wheel-") as tmp:
        # A copy, so that the build leaves nothing in the source tree.
        copy = Path(tmp, "src")
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns(*_BUILD_LEFTOVERS))
        run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", tmp, str(copy)], "build the glue")
        built = next(Path(tmp).glob("*.whl"))
        target.mkdir(parents=True, exist_ok=True)
        staged = target / f".{built.name}.partial"
        shutil.copyfile(built, staged)
        # Atomic, so that a concurrent install never picks up half a wheel.
        return staged.replace(target / built.name)


def source_digest(source: Path) -> str:
    """sha256 of every file's relative path and content under ``source``."""
    digest = hashlib.sha256()
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        leftover = any(fnmatch(part, p) for part in relative.parts for p in _BUILD_LEFTOVERS)
        if path.is_file() and not leftover:
            digest.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def installed_from(python: Path, wheel: Path) -> bool:
    """Whether the environment's glue was installed from exactly this wheel."""
    recorded = direct_url(python)
    if not recorded:
        return False
    origin = json.loads(recorded)
    expected_hash = "sha256=" + hashlib.sha256(wheel.read_bytes()).hexdigest()
    recorded_hash = origin.get("archive_info", {}).get("hash", expected_hash)
    return bool(origin.get("url") == wheel.as_uri() and recorded_hash == expected_hash)


def direct_url(python: Path) -> Optional[str]:
    """The installed glue's ``direct_url.json`` text, ``None`` when the glue is not installed."""
    probe = capture([str(python), "-I", "-c", _PROBE, DIST])
    return probe.stdout if probe.returncode == 0 else None


def config_data(
    wrapper: Path, *, timeout: Optional[float], workspace: Optional[Path], mode: Optional[str]
) -> dict[str, Any]:
    """The glue's settings file content; unset values are left to the glue's defaults."""
    data: dict[str, Any] = {"wrapper": str(wrapper.expanduser().absolute())}
    if timeout is not None:
        data["timeout"] = timeout
    if workspace is not None:
        data["workspace"] = str(workspace.expanduser().absolute())
    if mode is not None:
        data["mode"] = mode
    return data


def write_config(path: Path, data: dict[str, Any]) -> bool:
    """Write ``data`` as JSON unless the file already says exactly that; True when written."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(path.name + ".partial")
    staged.write_text(text, encoding="utf-8")
    staged.replace(path)
    return True


def restart() -> str:
    """Restart the Jupyter server through systemd where it runs under systemd; say what happened."""
    systemctl = shutil.which("systemctl")
    if systemctl is None or capture([systemctl, "cat", UNIT]).returncode:
        return f"not restarted: no systemd unit {UNIT} here; restart the Jupyter server yourself"
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    done = capture([*sudo, systemctl, "restart", UNIT])
    if done.returncode:
        return f"restart failed ({_last_line(done.stderr)}); run: sudo systemctl restart {UNIT}"
    return f"restarted {UNIT}"


def pip(python: Path, *args: str) -> None:
    """Run the environment's own pip."""
    run([str(python), "-m", "pip", "--disable-pip-version-check", *args], f"pip {args[0]} into {python}")


def run(argv: list[str], what: str) -> None:
    """Run ``argv``; a failure is a ``UsageError`` carrying pip's last words."""
    done = capture(argv)
    if done.returncode:
        raise UsageError(
            f"could not {what}: {_last_line(done.stderr or done.stdout)}",
            "check that pip works there and can reach your package index (PIP_INDEX_URL)",
        )


def capture(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to its end with its output captured; the caller judges the exit status."""
    return subprocess.run(argv, check=False, capture_output=True, text=True)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


def parser() -> argparse.ArgumentParser:
    """The command line of the setup command."""
    top = argparse.ArgumentParser(prog="sagecode jupyter", description=__doc__.splitlines()[0])
    commands = top.add_subparsers(dest="command", required=True)
    add = commands.add_parser("install", help="install the launcher card's glue")
    add.add_argument("--wrapper", type=Path, default=Path(sys.prefix, "bin", "code-server"))
    add.add_argument("--timeout", type=float, help="seconds the proxy waits for the editor")
    add.add_argument("--workspace", type=Path, help="folder to open (default ~/SageMaker)")
    add.add_argument("--mode", choices=("auto", "socket", "tcp"), help="how the proxy reaches the editor")
    add.add_argument("--wheel", type=Path, help="a prebuilt sagecode-jupyter wheel")
    remove = commands.add_parser("uninstall", help="remove the glue and its config")
    for sub in (add, remove):
        sub.add_argument("--env", type=Path, default=DEFAULT_ENV, help="the Jupyter environment")
        sub.add_argument("--restart-jupyter", action="store_true", help="restart Jupyter (kills kernels)")
    return top


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the setup command; errors are one line on stderr and exit status 2."""
    args = parser().parse_args(argv)
    try:
        outcome = _dispatch(args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(_summary(args, outcome))
    return 0


def _dispatch(args: argparse.Namespace) -> Outcome:
    if args.command == "uninstall":
        return uninstall(args.env, restart_jupyter=args.restart_jupyter)
    if not os.access(args.wrapper, os.X_OK):
        print(f"warning: {args.wrapper} is not there yet; the card will say so", file=sys.stderr)
    return install(
        args.env,
        args.wrapper,
        timeout=args.timeout,
        workspace=args.workspace,
        mode=args.mode,
        wheel=args.wheel,
        restart_jupyter=args.restart_jupyter,
    )


def _summary(args: argparse.Namespace, outcome: Outcome) -> str:
    if not outcome.changed:
        done = "already in place"
    else:
        done = f"{args.command}ed; Jupyter shows it after its next start (or --restart-jupyter)"
    return f"{DIST} in {args.env}: {done}" + (f"; {outcome.restart}" if outcome.restart else "")
