"""The catalogue of layers and how they compose into an image.

``ORDER`` is the order of the final stage, by how often each layer changes: the OS
packages and the site-wide shell files rarely; the runtimes and tools with their
releases (the agents almost daily); the defaults and the entrypoint with this project.
A change to one layer rebuilds it and what follows, never what precedes; the builder
stages run in parallel, and ``COPY --link`` keeps a changed tool from invalidating the
copies after it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Callable

from imagebuild.config import CODE_SERVER_SOURCES, BuildConfig
from imagebuild.errors import UsageError
from imagebuild.layers import (
    agents,
    awscli,
    base,
    code_server,
    editor,
    entrypoint,
    kiro,
    mise,
    node,
    shell,
    trust_ca,
)
from imagebuild.layers.model import Layer, Want

ORDER = ("base", "trust-ca", "shell", "node", "code-server", "awscli", "mise", "agents", "kiro",
         "editor", "entrypoint")
REQUIRED = frozenset({"base", "entrypoint"})
# Off unless asked for: kiro with --with kiro, trust-ca with --trust-ca (or --with).
OPTIONAL = frozenset({"kiro", "trust-ca"})
# A layer that needs another one's stage or runtime.
NEEDS = {"code-server": ("node",), "mise": ("node",), "agents": ("node",), "editor": ("code-server",)}

Versions = Mapping[str, str]


def _code_server(config: BuildConfig, v: Versions) -> Layer:
    return code_server.layer(
        v["code-server"], v["code-server-source"],
        v.get("code-server-url", ""), v.get("code-server-sha256") or None, config.platform,
    )


MAKERS: dict[str, Callable[[BuildConfig, Versions], Layer]] = {
    "base": lambda c, v: base.layer(),
    "trust-ca": lambda c, v: trust_ca.layer(c.ca_bundle),
    "shell": lambda c, v: shell.layer(),
    "node": lambda c, v: node.layer(v["node"], v["npm"], c.platform),
    "code-server": _code_server,
    "awscli": lambda c, v: awscli.layer(v["awscli"], v.get("awscli-source", "pypi"), c.platform),
    "mise": lambda c, v: mise.layer(v["mise"], c.platform),
    "agents": lambda c, v: agents.layer(v["claude-code"], v["cline"]),
    "kiro": lambda c, v: kiro.layer(),
    "editor": lambda c, v: editor.layer(),
    "entrypoint": lambda c, v: entrypoint.layer(c.aws_region, c.bedrock_model),
}

WANTS: dict[str, Callable[[BuildConfig], tuple[Want, ...]]] = {
    "node": lambda c: node.wants(c.node, c.npm, c.platform),
    "code-server": lambda c: (Want("code-server", c.code_server_source, "code-server", c.code_server),),
    "awscli": lambda c: awscli.wants(c.aws_cli, c.aws_cli_source),
    "mise": lambda c: mise.wants(c.mise),
    "agents": lambda c: agents.wants(c.claude_code, c.cline),
}


def _check_switches(config: BuildConfig) -> None:
    known = set(ORDER)
    unknown = sorted((config.disabled | config.extra_layers) - known)
    if unknown:
        raise UsageError(f"unknown layer(s): {', '.join(unknown)}", f"known layers: {', '.join(ORDER)}")
    required = sorted(config.disabled & REQUIRED)
    if required:
        raise UsageError(f"layer(s) {', '.join(required)} cannot be switched off", "drop them from --without")
    not_optional = sorted(config.extra_layers - OPTIONAL)
    if not_optional:
        raise UsageError(f"layer(s) {', '.join(not_optional)} are on by default",
                         f"--with takes only {', '.join(sorted(OPTIONAL))}")
    if config.code_server_source not in CODE_SERVER_SOURCES:
        raise UsageError(
            f"unknown code-server source {config.code_server_source!r}", "use auto, github or npm"
        )


def enabled(config: BuildConfig) -> tuple[str, ...]:
    """The layers this build includes, in order; bad switches are a one-line error."""
    _check_switches(config)
    asked = config.extra_layers | ({"trust-ca"} if config.trust_ca else set())
    names = tuple(n for n in ORDER if n not in config.disabled and (n not in OPTIONAL or n in asked))
    for name in names:
        missing = [d for d in NEEDS.get(name, ()) if d not in names]
        if missing:
            raise UsageError(f"layer {name} needs {', '.join(missing)}", f"keep {', '.join(missing)} on")
    return names


def wants(config: BuildConfig) -> tuple[Want, ...]:
    """The versions the enabled layers need resolved before the build starts."""
    return tuple(w for name in enabled(config) if name in WANTS for w in WANTS[name](config))


def compose(config: BuildConfig, versions: Versions) -> tuple[Layer, ...]:
    """The enabled layers, made with their resolved versions, in build order."""
    return tuple(MAKERS[name](config, versions) for name in enabled(config))
