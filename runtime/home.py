"""The editor's persistent home (``<state>/home``): HOME inside the container.

Layout, all on the volume, so it survives a stop/start and a new container:

    home/                 700  the container user's HOME (mounted at the same path)
      .config .cache .local/{share,state,bin}  700  the XDG folders, at their defaults
      .ssh  .aws          700  real folders, files 600: keys and credentials
      .zshrc                   the user's, with sagecode's fenced block

``.ssh`` and ``.aws`` are plain folders in this home rather than symlinks elsewhere:
the home is already persistent and mounted whole, whereas a link out of it would only
resolve in the container if its target were mounted too. No key is generated and
nothing is added to the host's SSH configuration (the predecessor offered a
passphrase-less key to every host).

Running the setup again changes nothing: files are only written when their content
differs, and modes are only set on what sagecode owns.
"""

from __future__ import annotations

from pathlib import Path

from runtime.files import PRIVATE_DIR, ensure_dir, make_private, update_text
from runtime.rcblock import replace_block

XDG_DIRS = (".config", ".cache", ".local", ".local/share", ".local/state", ".local/bin")
PRIVATE_DIRS = (".ssh", ".aws")
ZSHRC_BLOCK = (
    "# The history lives in this persistent home, so it survives restarts.",
    'HISTFILE="$HOME/.zsh_history"',
    "HISTSIZE=100000",
    "SAVEHIST=100000",
    "setopt APPEND_HISTORY INC_APPEND_HISTORY HIST_IGNORE_DUPS HIST_IGNORE_SPACE",
    "typeset -U path",
    'path=("$HOME/.local/bin" $path)',
    "# Two lines: history number, user@sagecode (this container), the folder and its name.",
    "PROMPT=$'\\n%F{cyan}#%h%f %F{green}%n%f@%F{blue}sagecode%f:%F{yellow}%~%f|%B%1~%b\\n%# '",
)


def setup_home(home: Path) -> None:
    """Create or repair the container home at ``home``; idempotent."""
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(PRIVATE_DIR)  # settings and history hold tokens; the folder is sagecode's own
    for name in XDG_DIRS:
        ensure_dir(home / name, PRIVATE_DIR)
    for name in PRIVATE_DIRS:
        ensure_dir(home / name, PRIVATE_DIR)
        make_private(home / name)
    update_text(home / ".zshrc", lambda text: replace_block(text, ZSHRC_BLOCK))
