"""The system layer: shells, editors and tools every user expects, from the OS archive."""

from __future__ import annotations

from imagebuild.layers.model import Layer

PACKAGES = (
    "bash", "ca-certificates", "curl", "git", "less", "libgomp1", "locales",
    "openssh-client", "procps", "python3", "python3-pip", "python3-venv",
    "python-is-python3", "tmux", "unzip", "vim", "zsh", "zstd",
)


def layer() -> Layer:
    """System packages plus a UTF-8 locale; ``python`` is ``python3``."""
    return Layer(
        name="base",
        summary="system packages from the OS archive",
        apt=PACKAGES,
        run=("sed -i 's/^# *en_US.UTF-8/en_US.UTF-8/' /etc/locale.gen && locale-gen >/dev/null",),
        env=(("LANG", "en_US.UTF-8"), ("LC_ALL", "en_US.UTF-8")),
        verify=(
            "zsh --version", "git --version", "vim --version | head -1", "tmux -V",
            "python --version", "locale | grep -q en_US.UTF-8",
        ),
    )
