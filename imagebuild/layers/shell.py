"""vim and zsh defaults for everyone in the image; a user's own rc files still win.

Both are system-wide files (Debian's and Ubuntu's /etc/vim/vimrc read vimrc.local; our
/etc/zsh/zshrc addition reads /etc/zsh/zshrc.d), so nothing is written into a home.
"""

from __future__ import annotations

from imagebuild.layers.model import File, Layer

ZSHRC_D = "/etc/zsh/zshrc.d"
# Appended once to the distribution's /etc/zsh/zshrc: zsh has no drop-in folder of its own.
# A setup step of the base stage (where zsh is installed), not a step on the final image.
SOURCE_ZSHRC_D = (
    "printf '\\n# sagecode: site-wide additions\\nfor f in %s/*.zsh(N); do source \"$f\"; done\\n' "
    f"{ZSHRC_D} >> /etc/zsh/zshrc"
)


def layer() -> Layer:
    """System vimrc.local and a zshrc.d file with a prompt, completion and history."""
    return Layer(
        name="shell",
        summary="vim and zsh defaults (system-wide)",
        files=(
            File("shell/vimrc.local", "/etc/vim/vimrc.local"),
            File("shell/zshrc.zsh", f"{ZSHRC_D}/sagecode.zsh"),
        ),
        setup=(SOURCE_ZSHRC_D,),
        verify=(
            "vim -es -N -u /etc/vim/vimrc -c 'if &tabstop != 4 | cquit | endif' -c 'qa!'",
            "zsh -ic 'print -r -- $PROMPT' | grep -q '%n'",
        ),
    )
