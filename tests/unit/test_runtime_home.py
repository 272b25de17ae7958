"""The persistent container home and the host terminal hint (runtime.home, runtime.hint)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from imagebuild.paths import StatePaths
from runtime.hint import STATE_FILE, Phase, hint_block, install_host_hint, mark_setup
from runtime.home import XDG_DIRS, setup_home
from runtime.rcblock import START

Snapshot = dict[str, tuple[object, ...]]


def snapshot(root: Path) -> Snapshot:
    """Every entry under ``root``: kind, mode, content hash, symlink target, inode and mtime."""
    entries: Snapshot = {}
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder, name)
            info = path.lstat()
            key = str(path.relative_to(root))
            if path.is_symlink():
                entries[key] = ("link", str(path.readlink()))
            elif path.is_dir():
                entries[key] = ("dir", oct(info.st_mode & 0o7777))
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                entries[key] = ("file", oct(info.st_mode & 0o7777), digest, info.st_ino, info.st_mtime_ns)
    return entries


def full_setup(state: StatePaths, bashrc: Path) -> None:
    """What the lifecycle hook runs: the container home, the hint block, the phase."""
    setup_home(state.home)
    install_host_hint(bashrc, state)
    mark_setup(state, Phase.READY)


@pytest.fixture
def state(tmp_path: Path) -> StatePaths:
    """A state folder with a user's own zshrc, a key that is too open and a linked ssh config."""
    paths = StatePaths(tmp_path / "SageMaker" / ".sagecode")
    ssh = paths.home / ".ssh"
    ssh.mkdir(parents=True)
    (ssh / "id_ed25519").write_text("KEY\n")
    (ssh / "id_ed25519").chmod(0o644)
    (tmp_path / "ssh_config").write_text("Host *\n")
    (tmp_path / "ssh_config").chmod(0o644)
    (ssh / "config").symlink_to(tmp_path / "ssh_config")
    (paths.home / ".zshrc").write_text("alias gs='git status'\n")
    return paths


def test_home_setup_twice_is_byte_identical(state: StatePaths, tmp_path: Path) -> None:
    """A second run changes no byte, mode, link or mtime anywhere in the state or the host rc."""
    bashrc = tmp_path / "host" / ".bashrc"
    bashrc.parent.mkdir()
    bashrc.write_text("# user\n")
    full_setup(state, bashrc)
    first = (snapshot(state.root), snapshot(bashrc.parent))
    full_setup(state, bashrc)
    assert (snapshot(state.root), snapshot(bashrc.parent)) == first


def test_home_layout_and_modes(state: StatePaths) -> None:
    """HOME, the XDG folders and the credential folders are private; keys are 600."""
    setup_home(state.home)
    modes = {name: (state.home / name).stat().st_mode & 0o777 for name in ("", *XDG_DIRS, ".ssh", ".aws")}
    assert set(modes.values()) == {0o700}
    assert (state.home / ".ssh" / "id_ed25519").stat().st_mode & 0o777 == 0o600


def test_home_credentials_are_plain_folders(state: StatePaths) -> None:
    """``.ssh`` and ``.aws`` are real folders in the home, so they resolve in any container."""
    setup_home(state.home)
    assert all((state.home / n).is_dir() and not (state.home / n).is_symlink() for n in (".ssh", ".aws"))


def test_home_symlink_targets_are_not_chmodded(state: StatePaths, tmp_path: Path) -> None:
    """A symlink inside ``.ssh`` is left alone, and so is the file it points at."""
    setup_home(state.home)
    assert (tmp_path / "ssh_config").stat().st_mode & 0o777 == 0o644


def test_home_zshrc_keeps_user_lines_and_one_block(state: StatePaths) -> None:
    """The user's zshrc lines stay first, followed by exactly one sagecode block."""
    setup_home(state.home)
    setup_home(state.home)
    text = (state.home / ".zshrc").read_text()
    assert text.startswith("alias gs='git status'\n\n# >>> sagecode >>>\n")
    assert text.count(START) == 1
    assert 'HISTFILE="$HOME/.zsh_history"' in text


def test_home_setup_creates_state_from_nothing(tmp_path: Path) -> None:
    """On a fresh volume the home and its parents are created."""
    home = tmp_path / "fresh" / ".sagecode" / "home"
    setup_home(home)
    assert (home / ".zshrc").is_file()


@pytest.mark.parametrize(
    ("phase", "log", "line"),
    [
        (Phase.RUNNING, Path("/v/logs/setup.log"), "running /v/logs/setup.log\n"),
        (Phase.FAILED, None, "failed {logs}\n"),
        (Phase.READY, Path("/ignored"), "ready\n"),
    ],
)
def test_hint_mark_setup_writes_one_line(tmp_path: Path, phase: Phase, log: Path | None, line: str) -> None:
    """The phase file holds the phase and, unless ready, a log path (the logs folder by default)."""
    state = StatePaths(tmp_path)
    mark_setup(state, phase, log)
    assert (state.run / STATE_FILE).read_text() == line.format(logs=state.logs)


def run_hint(state: StatePaths, bashrc: Path, *, interactive: bool = True) -> str:
    """What an interactive (or not) bash prints when it sources ``bashrc`` twice."""
    flags = ["--norc", "--noprofile", "-i"] if interactive else ["--norc", "--noprofile"]
    script = f"source '{bashrc}'; source '{bashrc}'; type -t sagecode || true"
    env = {"PATH": os.environ["PATH"], "HOME": str(bashrc.parent)}
    result = subprocess.run(
        ["bash", *flags, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    return result.stdout


@pytest.mark.parametrize(
    ("phase", "shown"),
    [
        (Phase.RUNNING, "sagecode: the editor is being set up (log: {logs})\n"),
        (Phase.FAILED, "sagecode: the editor setup failed; see {logs}\n"),
        (Phase.READY, "sagecode: the editor is ready; enter its container with 'sagecode shell'\n"),
    ],
)
def test_hint_prints_phase_once_per_shell(tmp_path: Path, phase: Phase, shown: str) -> None:
    """An interactive bash prints the phase's line once, however often the rc is sourced."""
    state = StatePaths(tmp_path / "state")
    bashrc = tmp_path / ".bashrc"
    install_host_hint(bashrc, state)
    mark_setup(state, phase)
    assert run_hint(state, bashrc) == shown.format(logs=state.logs)


def test_hint_silent_when_not_interactive_or_never_set_up(tmp_path: Path) -> None:
    """Scripts (scp, cron) see nothing, and nor does a shell when no setup ever ran."""
    state = StatePaths(tmp_path / "state")
    bashrc = tmp_path / ".bashrc"
    install_host_hint(bashrc, state)
    assert run_hint(state, bashrc) == ""
    mark_setup(state, Phase.READY)
    assert run_hint(state, bashrc, interactive=False) == ""


def test_hint_defines_sagecode_command_when_installed(tmp_path: Path) -> None:
    """``sagecode`` becomes a shell function calling the venv's CLI, once that exists."""
    state = StatePaths(tmp_path / "state dir")
    cli = state.root / "venv" / "bin" / "sagecode"
    cli.parent.mkdir(parents=True)
    cli.write_text("#!/bin/sh\n")
    cli.chmod(0o755)
    bashrc = tmp_path / ".bashrc"
    install_host_hint(bashrc, state)
    assert run_hint(state, bashrc, interactive=False) == "function\n"


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_hint_block_is_shellcheck_clean(tmp_path: Path) -> None:
    """The host block passes shellcheck as bash, with a path that needs quoting."""
    script = tmp_path / "block.sh"
    lines = ("#!/bin/bash", *hint_block(StatePaths(Path("/a b/it's"))), "")
    script.write_text("\n".join(lines))
    subprocess.run(["shellcheck", "-s", "bash", str(script)], check=True)
