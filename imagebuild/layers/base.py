"""The system layer: shells, editors and tools every user expects, from the OS archive.

``mandoc`` is what ``aws ... help`` renders its pages with.
"""

from __future__ import annotations

from imagebuild.layers.model import Layer

PACKAGES = (
    "bash", "ca-certificates", "curl", "git", "less", "libgomp1", "locales", "mandoc",
    "openssh-client", "procps", "python3", "python3-pip", "python3-venv",
    "python-is-python3", "tmux", "unzip", "vim", "zsh", "zstd",
)
# code-server since 4.17 and the Node 24 binaries are linked against glibc 2.28.
MIN_GLIBC = "2.28"
# `sort -V` puts the older of the two first; an empty answer (musl, no getconf) sorts
# first too, so anything but a new enough glibc is refused.
GLIBC_CHECK = (
    "v=$(getconf GNU_LIBC_VERSION 2>/dev/null | cut -d' ' -f2); "
    "[ \"$(printf '%s\\n' {min} \"$v\" | sort -V | head -n1)\" = {min} ] || "
    "{{ echo \"error: the base image has glibc ${{v:-unknown}}; code-server needs glibc {min} "
    "or newer (use --base-image ubuntu:22.04 or newer)\" >&2; exit 1; }}"
)


def glibc_check(minimum: str = MIN_GLIBC) -> str:
    """A shell check that fails, with one clear line, on a glibc older than ``minimum``."""
    return GLIBC_CHECK.format(min=minimum)


def layer() -> Layer:
    """System packages plus a UTF-8 locale (generated in the base stage: a tool's bump never
    reruns it); ``python`` is ``python3``."""
    return Layer(
        name="base",
        summary="system packages from the OS archive",
        preflight=(glibc_check(),),
        apt=PACKAGES,
        setup=("sed -i 's/^# *en_US.UTF-8/en_US.UTF-8/' /etc/locale.gen && locale-gen >/dev/null",),
        env=(("LANG", "en_US.UTF-8"), ("LC_ALL", "en_US.UTF-8")),
        verify=(
            "zsh --version", "git --version", "vim --version | head -1", "tmux -V",
            "python --version", "locale | grep -q en_US.UTF-8",
        ),
    )
