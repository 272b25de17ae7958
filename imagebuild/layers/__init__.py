"""The catalogue of layers and how they compose into an image.

``ORDER`` is the order of the final stage, by how often each layer changes: the OS
packages rarely, Node and code-server with their releases, the entrypoint with this
project. A change to one layer rebuilds it and what follows, never what precedes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Callable

from imagebuild.config import CODE_SERVER_SOURCES, BuildConfig
from imagebuild.errors import UsageError
from imagebuild.layers import base, code_server, entrypoint, node
from imagebuild.layers.model import Layer, Want

ORDER = ("base", "node", "code-server", "entrypoint")
REQUIRED = frozenset({"base", "entrypoint"})
# A layer that needs another one's stage or runtime.
NEEDS = {"code-server": ("node",)}

Versions = Mapping[str, str]


def _code_server(config: BuildConfig, v: Versions) -> Layer:
    return code_server.layer(
        v["code-server"], v["code-server-source"],
        v.get("code-server-url", ""), v.get("code-server-sha256") or None,
    )


MAKERS: dict[str, Callable[[BuildConfig, Versions], Layer]] = {
    "base": lambda c, v: base.layer(),
    "node": lambda c, v: node.layer(v["node"], v["npm"], c.platform),
    "code-server": _code_server,
    "entrypoint": lambda c, v: entrypoint.layer(),
}


def enabled(config: BuildConfig) -> tuple[str, ...]:
    """The layers this build includes, in order; bad switches are a one-line error."""
    unknown = sorted(config.disabled - set(ORDER))
    if unknown:
        raise UsageError(f"unknown layer(s): {', '.join(unknown)}", f"known layers: {', '.join(ORDER)}")
    required = sorted(config.disabled & REQUIRED)
    if required:
        raise UsageError(f"layer(s) {', '.join(required)} cannot be switched off", "drop them from --without")
    names = tuple(n for n in ORDER if n not in config.disabled)
    for name in names:
        missing = [d for d in NEEDS.get(name, ()) if d not in names]
        if missing:
            raise UsageError(f"layer {name} needs {', '.join(missing)}", f"keep {', '.join(missing)} on")
    if config.code_server_source not in CODE_SERVER_SOURCES:
        raise UsageError(
            f"unknown code-server source {config.code_server_source!r}", "use auto, github or npm"
        )
    return names


def wants(config: BuildConfig) -> tuple[Want, ...]:
    """The versions the enabled layers need resolved before the build starts."""
    names = enabled(config)
    out: list[Want] = []
    if "node" in names:
        out += node.wants(config.node, config.npm, config.platform)
    if "code-server" in names:
        out.append(Want("code-server", config.code_server_source, "code-server", config.code_server))
    return tuple(out)


def compose(config: BuildConfig, versions: Versions) -> tuple[Layer, ...]:
    """The enabled layers, made with their resolved versions, in build order."""
    return tuple(MAKERS[name](config, versions) for name in enabled(config))
