#!/usr/bin/env python3
"""Install the curated code-server extensions, in the background, once each.

``extensions.py LIST [--user-data-dir DIR] [--extensions-dir DIR]``

First every ``.vsix`` in ``$SAGECODE_VSIX_DIR`` (default ``~/.sagecode/vsix``): the
offline route for instances with no gallery. Then every id in LIST not yet installed,
from the gallery (Open VSX, or ``EXTENSIONS_GALLERY``). What got installed is recorded
(``$XDG_STATE_HOME/sagecode/extensions.done``) and never tried again, so an extension
the user removes stays removed; what failed is tried at the next start. Failures are
warnings in the log (the first-start script points stdout here), never errors.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

CODE_SERVER = os.environ.get("SAGECODE_CODE_SERVER", "/usr/local/bin/code-server")
# The whole gallery run; a black-holed network must not leave a process behind for long.
TIMEOUT_S = 900


def log(text: str) -> None:
    """A timestamped line in the log."""
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {text}", flush=True)


class Installer:
    """code-server's extension commands for one user data and extensions directory."""

    def __init__(self, user_data_dir: str, extensions_dir: str | None) -> None:
        self.dirs = ["--user-data-dir", user_data_dir]
        self.dirs += ["--extensions-dir", extensions_dir] if extensions_dir else []

    def run(self, args: Sequence[str], timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        """code-server with ``args``; its output goes to the log."""
        result = subprocess.run([CODE_SERVER, *self.dirs, *args], capture_output=True, text=True,
                                timeout=timeout, check=False)
        for line in (result.stdout + result.stderr).splitlines():
            if line.strip():
                log(f"  {line.strip()}")
        return result

    def installed(self) -> set[str]:
        """Installed extension ids, lower case (ids are case-insensitive)."""
        result = subprocess.run([CODE_SERVER, *self.dirs, "--list-extensions"], capture_output=True,
                                text=True, timeout=120, check=False)
        return {line.strip().lower() for line in result.stdout.splitlines() if line.strip()}

    def install(self, names: Iterable[str]) -> bool:
        """Install ids or .vsix paths in one code-server run; True when it succeeded."""
        args = [flag for name in names for flag in ("--install-extension", name)]
        return bool(args) and self.run(args).returncode == 0


def read_lines(path: Path) -> list[str]:
    """Non-empty, non-comment lines."""
    if not path.exists():
        return []
    return [s for s in (line.strip() for line in path.read_text().splitlines()) if s and s[0] != "#"]


def install_vsix(installer: Installer, directory: Path, done: set[str]) -> list[str]:
    """Each new .vsix file, one by one (a bad file must not block the others)."""
    added = []
    for vsix in sorted(directory.glob("*.vsix")) if directory.is_dir() else []:
        if vsix.name in done:
            continue
        log(f"installing {vsix}")
        if installer.install([str(vsix)]):
            added.append(vsix.name)
        else:
            log(f"warning: {vsix.name} did not install")
    return added


def install_ids(installer: Installer, wanted: list[str], done: set[str]) -> list[str]:
    """The wanted ids not installed yet, from the gallery; returns those now installed."""
    before = installer.installed()
    todo = [i for i in wanted if i.lower() not in done and i.lower() not in before]
    if todo:
        log(f"installing {len(todo)} extension(s) from the gallery")
        try:
            installer.install(todo)
        except subprocess.TimeoutExpired:
            log(f"warning: the gallery did not answer within {TIMEOUT_S} s")
    after = installer.installed()
    missing = [i for i in todo if i.lower() not in after]
    if missing:
        log(f"warning: not installed (gallery unreachable?): {' '.join(missing)}; "
            "they are tried again at the next start, or put .vsix files in the vsix folder")
    return [i.lower() for i in wanted if i.lower() in after]


def main(argv: Sequence[str], env: dict[str, str]) -> int:
    """Install what is missing; exits 0 even when the gallery is unreachable."""
    parser = argparse.ArgumentParser()
    parser.add_argument("list", type=Path)
    parser.add_argument("--user-data-dir", required=True)
    parser.add_argument("--extensions-dir")
    opts = parser.parse_args(argv)
    home = Path(env.get("HOME", "/nonexistent"))
    state = Path(env.get("XDG_STATE_HOME") or home / ".local/state") / "sagecode"
    vsix_dir = Path(env.get("SAGECODE_VSIX_DIR") or home / ".sagecode/vsix")
    state.mkdir(parents=True, exist_ok=True)
    with (state / "extensions.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # another container of this home is already at it
        done_file = state / "extensions.done"
        done = set(read_lines(done_file))
        installer = Installer(opts.user_data_dir, opts.extensions_dir)
        added = install_vsix(installer, vsix_dir, done)
        added += install_ids(installer, read_lines(opts.list), done | set(added))
        new = sorted(set(added) - done)
        if new:
            with done_file.open("a") as f:
                f.writelines(f"{name}\n" for name in new)
        log(f"done: {len(new)} newly installed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], dict(os.environ)))
