"""The host terminal's one-line hint: is the editor being set up, broken, or ready?

The setup (the lifecycle hook) records its phase with ``mark_setup`` in one small file,
``<state>/run/setup-state``: ``running <log>``, ``failed <log>`` or ``ready``. The host's
``~/.bashrc`` gets a fenced block that reads it with the ``read`` builtin, so opening a
terminal starts no process. The hook should mark ``running`` before it writes the block
(the state file is on the volume and still says ``ready`` from the last boot).
"""

from __future__ import annotations

import shlex
from enum import Enum
from pathlib import Path
from typing import Optional

from imagebuild.paths import StatePaths
from runtime.files import update_text
from runtime.rcblock import replace_block

STATE_FILE = "setup-state"


class Phase(str, Enum):
    """Where the setup is."""

    RUNNING = "running"
    FAILED = "failed"
    READY = "ready"


def mark_setup(state: StatePaths, phase: Phase, log: Optional[Path] = None) -> None:
    """Record the setup's phase atomically for the host hint; not ready names a log (or logs/)."""
    state.run.mkdir(parents=True, exist_ok=True)
    line = phase.value if phase is Phase.READY else f"{phase.value} {log or state.logs}"
    update_text(state.run / STATE_FILE, lambda _: f"{line}\n")


def install_host_hint(bashrc: Path, state: StatePaths) -> bool:
    """Put the hint block in the host's ``bashrc``; ``True`` when the file changed."""
    return update_text(bashrc, lambda text: replace_block(text, hint_block(state)))


def hint_block(state: StatePaths) -> tuple[str, ...]:
    """Bash 4.2 lines: a ``sagecode`` function, then the hint once per interactive shell."""
    # The venv stays off the host's PATH: its python and pip would shadow conda's.
    cli = shlex.quote(str(state.venv / "bin" / "sagecode"))
    flag = shlex.quote(str(state.run / STATE_FILE))
    return (
        f'if [ -x {cli} ]; then sagecode() {{ {cli} "$@"; }}; fi',
        "case $- in *i*)",
        f'  if [ -z "${{__sagecode_hint-}}" ] && [ -r {flag} ]; then',
        "    __sagecode_hint=1",
        f"    read -r __sagecode_phase __sagecode_log < {flag} || :",
        '    case "$__sagecode_phase" in',
        '      running) echo "sagecode: the editor is being set up (log: $__sagecode_log)" ;;',
        '      failed) echo "sagecode: the editor setup failed; see $__sagecode_log" ;;',
        "      ready) echo \"sagecode: the editor is ready; enter its container with 'sagecode shell'\" ;;",
        "    esac",
        "    unset __sagecode_phase __sagecode_log",
        "  fi ;;",
        "esac",
    )
