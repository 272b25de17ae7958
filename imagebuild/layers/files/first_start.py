#!/usr/bin/env python3
"""A user's first start in the image: defaults into HOME once, extensions in the background.

The entrypoint runs this as the session's user before it execs the session. Every layer
with defaults ships a seed list, ``SEEDS_DIR/<layer>.json``, naming a template beside it
and where it goes. A seed is applied once per home (a marker under
``$XDG_STATE_HOME/sagecode/seeded``), so what a user changes or deletes afterwards is
never undone, and a file the user already had is kept: ``place`` writes only a missing
file, ``merge-json`` adds missing keys under the user's own. Nothing here may stop the
session: every failure is one warning line.

Runs on the image's python3 (3.9 or newer): standard library only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

SEEDS_DIR = Path(os.environ.get("SAGECODE_SEEDS_DIR", "/usr/local/share/sagecode/seeds"))
DEFAULT_REGION = "us-east-1"
DEFAULT_MODEL = "us.anthropic.claude-opus-4-6-v1"
# Bedrock's cross-region inference profiles prefix the model id with a geography.
_GEO_PREFIX = re.compile(r"^(us|eu|apac|jp|au|ca|global)\.")
_PLACEHOLDER = re.compile(r"@([A-Z_]+)@")
Json = dict[str, Any]


def warn(text: str) -> None:
    """One line on stderr; never an exception."""
    print(f"sagecode: warning: {text}", file=sys.stderr)


def option(args: Sequence[str], name: str) -> Optional[str]:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in code-server's arguments."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


class Context:
    """Where things go for this user, and the values templates are filled with."""

    def __init__(self, env: Mapping[str, str], args: Sequence[str] = ()) -> None:
        self.env = env
        self.home = Path(env.get("HOME") or "/nonexistent")
        self.state = Path(env.get("XDG_STATE_HOME") or self.home / ".local/state") / "sagecode"
        xdg_data = Path(env.get("XDG_DATA_HOME") or self.home / ".local/share")
        self.data = Path(option(args, "--user-data-dir") or xdg_data / "code-server")
        self.extensions = option(args, "--extensions-dir")

    def path(self, dest: str) -> Path:
        """``~/x`` is under HOME, ``@data/x`` under code-server's user data directory."""
        if dest.startswith("~/"):
            return self.home / dest[2:]
        if dest.startswith("@data/"):
            return self.data / dest[len("@data/"):]
        raise ValueError(f"seed destination {dest!r} must start with ~/ or @data/")

    def values(self) -> dict[str, str]:
        """Template values; the run-time environment overrides the image's defaults."""
        env = self.env
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") \
            or env.get("SAGECODE_AWS_REGION") or DEFAULT_REGION
        model = env.get("SAGECODE_BEDROCK_MODEL") or DEFAULT_MODEL
        return {
            "AWS_REGION": region,
            "BEDROCK_MODEL": model,
            "BEDROCK_MODEL_ID": _GEO_PREFIX.sub("", model),
            "PYTHON": python_path(env),
            "SHELL": shell_path(env),
        }


def python_path(env: Mapping[str, str]) -> str:
    """The python3 on PATH, resolved, so the editor does not depend on a symlink."""
    found = shutil.which("python3", path=env.get("PATH"))
    return os.path.realpath(found) if found else "python3"


def shell_path(env: Mapping[str, str]) -> str:
    """The user's shell when it exists, else zsh, else bash."""
    for shell in (env.get("SHELL", ""), "/bin/zsh", "/bin/bash"):
        if shell and os.access(shell, os.X_OK):
            return shell
    return "/bin/sh"


def fill(text: str, values: Mapping[str, str], as_json: bool) -> str:
    """Replace ``@NAME@`` placeholders; inside JSON the values are escaped as strings."""
    def one(match: re.Match[str]) -> str:
        value = values[match.group(1)]
        return json.dumps(value)[1:-1] if as_json else value

    return _PLACEHOLDER.sub(one, text)


def deep_merge(defaults: Json, user: Json) -> Json:
    """``defaults`` with ``user`` on top: the user's value wins wherever both have a key."""
    merged = dict(defaults)
    for key, value in user.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same directory, so a reader never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def place(dest: Path, text: str) -> None:
    """Write ``dest`` only when the user has no such file."""
    if not dest.exists() and not dest.is_symlink():
        write_atomic(dest, text)


def merge_json(dest: Path, text: str) -> None:
    """Add the defaults' missing keys to the user's JSON file (or create it)."""
    defaults = json.loads(text)
    user: Json = {}
    if dest.exists():
        user = json.loads(dest.read_text())
        if not isinstance(user, dict):
            raise ValueError(f"{dest} is not a JSON object; left as it is")
    merged = deep_merge(defaults, user)
    if merged != user or not dest.exists():
        write_atomic(dest, json.dumps(merged, indent=2) + "\n")


KINDS = {"place": place, "merge-json": merge_json}


def seeds(directory: Path) -> list[Json]:
    """Every layer's seeds, in file name order, with their templates' full paths."""
    out: list[Json] = []
    for spec in sorted(directory.glob("*.json")):
        for seed in json.loads(spec.read_text()).get("seeds", []):
            out.append({**seed, "template": str(directory / seed["template"])})
    return out


def apply(seed: Json, ctx: Context) -> None:
    """Apply one seed unless it was applied to this home before."""
    marker = ctx.state / "seeded" / seed["name"]
    if marker.exists() or seed["kind"] not in KINDS:
        return
    template = Path(seed["template"])
    text = fill(template.read_text(), ctx.values(), template.suffix in (".json", ".jsonc"))
    KINDS[seed["kind"]](ctx.path(seed["dest"]), text)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()


def start_extensions(seed: Json, ctx: Context) -> None:
    """Install the curated extensions in the background; the session does not wait."""
    if ctx.env.get("SAGECODE_EXTENSIONS", "1") == "0":
        return
    ctx.state.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, str(Path(__file__).with_name("extensions.py")), seed["template"],
            "--user-data-dir", str(ctx.data)]
    argv += ["--extensions-dir", ctx.extensions] if ctx.extensions else []
    with (ctx.state / "extensions.log").open("a") as log:
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True, close_fds=True)


def main(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """``first_start.py MODE [CODE-SERVER-ARGS...]``; MODE is code-server, shell or command."""
    mode, args = (argv[0], argv[1:]) if argv else ("command", [])
    ctx = Context(env, args)
    if not os.access(ctx.home, os.W_OK):
        return 0
    try:
        listed = seeds(SEEDS_DIR)
    except (OSError, ValueError, KeyError) as exc:
        warn(f"the image's seed lists are unreadable: {exc}")
        return 0
    for seed in listed:
        try:
            if seed["kind"] == "extensions":
                if mode == "code-server":
                    start_extensions(seed, ctx)
            else:
                apply(seed, ctx)
        except (OSError, ValueError, KeyError) as exc:
            warn(f"default {seed.get('name', '?')} not applied: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
