"""Editor defaults: the User and Machine settings and the curated extensions.

Nothing of it is in the user's home at build time: the first-start script places the
settings once (never over a file the user has) and installs the extensions in the
background, from Open VSX or offline from a folder of ``.vsix`` files.
"""

from __future__ import annotations

from imagebuild.layers.entrypoint import SEEDS, seed_files
from imagebuild.layers.model import Layer

TEMPLATES = ("user-settings.jsonc", "machine-settings.json", "extensions.txt")


def layer() -> Layer:
    """The seeds; code-server reads them from its user data directory."""
    return Layer(
        name="editor",
        summary="code-server settings and curated extensions, applied at first start",
        files=seed_files("editor", TEMPLATES),
        verify=(f"test $(grep -cv '^#' {SEEDS}/editor/extensions.txt) -eq 27",),
    )
