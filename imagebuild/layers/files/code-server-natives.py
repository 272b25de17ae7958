#!/usr/bin/env python3
"""Build steps only: compile code-server's native modules apart from the rest of it.

npm's install of code-server spends most of its time compiling a dozen native modules
(sqlite3, spdlog, kerberos...) whose versions rarely change between code-server releases.
The build installs code-server with --ignore-scripts, then:

  split ROOT OUT ARCH   copies the packages that compile, with the packages they need to
                        build, from ROOT (code-server's package folder) to OUT, at the same
                        relative places. OUT is the same bytes for every code-server release
                        with the same native modules, so BuildKit reuses the stage that
                        builds it, from its cache, across version bumps.
  build OUT             runs those packages' install scripts (npm rebuild) in OUT.
  finish ROOT ARCH      after OUT's changed files are copied over ROOT: runs every other
                        package's install scripts (prebuilt binaries), then code-server's
                        own postinstall, which finds its dependencies installed.

A package compiles when it has a binding.gyp and no prebuilt module for linux-ARCH.
`finish` runs on the image's own layers, where there is no compiler: a package taken for
prebuilt that compiles after all stops the build there, with npm's error naming it.

Runs on the image's python3 (3.9 or newer): standard library only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPTS = ("preinstall", "install", "postinstall")
LIST = ".sagecode-natives"
USAGE = "usage: code-server-natives split ROOT OUT ARCH | build OUT | finish ROOT ARCH"


def packages(root: Path) -> list[str]:
    """Every installed package under ``root``, as paths relative to it, sorted."""
    found = []
    for top, dirs, _ in os.walk(root):
        dirs.sort()
        if Path(top).name != "node_modules":
            continue
        for name in (d for d in dirs if not d.startswith(".")):
            path = Path(top, name)
            scoped = sorted(path.iterdir()) if name.startswith("@") else [path]
            found += [str(p.relative_to(root)) for p in scoped if (p / "package.json").is_file()]
    return sorted(found)


def manifest(root: Path, rel: str) -> dict[str, Any]:
    """The package.json of package ``rel``."""
    meta: dict[str, Any] = json.loads((root / rel / "package.json").read_text(encoding="utf-8"))
    return meta


def scripted(root: Path, rel: str) -> bool:
    """npm runs something for it at install: a script, or node-gyp for a binding.gyp."""
    scripts = manifest(root, rel).get("scripts") or {}
    return any(s in scripts for s in SCRIPTS) or (root / rel / "binding.gyp").is_file()


def compiles(root: Path, rel: str, arch: str) -> bool:
    """It has native sources for node-gyp and ships no module built for linux-``arch``."""
    gyp = False
    for top, dirs, files in os.walk(root / rel):
        dirs[:] = [d for d in dirs if d != "node_modules"]
        gyp = gyp or "binding.gyp" in files
        if Path(top).name.startswith(f"linux-{arch}") and any(f.endswith(".node") for f in files):
            return False
    return gyp


def resolve(root: Path, rel: str, name: str) -> str:
    """Where Node finds ``name`` required from package ``rel``: the nearest node_modules up."""
    here = Path(rel)
    while True:
        candidate = here / "node_modules" / name
        if (root / candidate / "package.json").is_file():
            return str(candidate)
        if here == here.parent:
            return ""
        here = here.parent


def closure(root: Path, natives: list[str]) -> list[str]:
    """The natives and every package they depend on, transitively."""
    seen: set[str] = set()
    todo = list(natives)
    while todo:
        rel = todo.pop()
        if rel in seen:
            continue
        seen.add(rel)
        meta = manifest(root, rel)
        for field in ("dependencies", "optionalDependencies"):
            todo += [dep for dep in (resolve(root, rel, n) for n in sorted(meta.get(field) or {})) if dep]
    return sorted(seen)


def classify(root: Path, arch: str) -> tuple[list[str], list[str]]:
    """(packages that compile, packages with other install scripts)."""
    with_scripts = [rel for rel in packages(root) if scripted(root, rel)]
    native = [rel for rel in with_scripts if compiles(root, rel, arch)]
    return native, [rel for rel in with_scripts if rel not in native]


def project(rel: str) -> str:
    """The folder npm works in for package ``rel``: the one above its first node_modules."""
    return rel.split("node_modules", 1)[0].rstrip("/") or "."


def rebuild(cwd: Path, rels: list[str]) -> None:
    """npm rebuild of these packages, grouped by the project each belongs to."""
    groups: dict[str, set[str]] = {}
    for rel in rels:
        groups.setdefault(project(rel), set()).add(manifest(cwd, rel)["name"])
    for folder, names in sorted(groups.items()):
        command = ["npm", "rebuild", "--foreground-scripts", *sorted(names)]
        print(f"code-server-natives: in {folder}: {' '.join(command)}", flush=True)
        subprocess.run(command, cwd=cwd / folder, check=True)


def label(root: Path, rel: str) -> str:
    """``name@version`` of the package in ``rel``."""
    meta = manifest(root, rel)
    return f"{meta['name']}@{meta['version']}"


def split(root: Path, out: Path, arch: str) -> None:
    """Copy the packages that compile, and what they need, from ``root`` to ``out``."""
    native, _ = classify(root, arch)
    out.mkdir(parents=True, exist_ok=True)
    needed = closure(root, native)
    for rel in needed:
        # a package's own files: the packages nested in it are copied on their own
        shutil.copytree(root / rel, out / rel, symlinks=True,
                        ignore=lambda d, _, top=root / rel: ["node_modules"] if Path(d) == top else [])
    (out / LIST).write_text("".join(f"{rel}\n" for rel in native), encoding="utf-8")
    named = sorted(label(root, rel) for rel in native)
    print(f"code-server-natives: {len(native)} packages compile: {' '.join(named) or 'none'}")
    # What the compile's cache key is made of: the same list in two releases means the
    # compile is taken from the cache (a build-time dependency can move on its own).
    held = sorted({label(root, rel) for rel in needed})
    print(f"code-server-natives: their folder holds {len(held)} packages: {' '.join(held) or 'none'}")


def build(out: Path) -> None:
    """Run the install scripts of the packages ``split`` listed, in ``out``."""
    rebuild(out, (out / LIST).read_text(encoding="utf-8").split())


def finish(root: Path, arch: str) -> None:
    """The other packages' install scripts, then code-server's own postinstall."""
    (root / LIST).unlink(missing_ok=True)
    _, prebuilt = classify(root, arch)
    if prebuilt:
        rebuild(root, prebuilt)
    if "postinstall" in (manifest(root, ".").get("scripts") or {}):
        subprocess.run(["npm", "run-script", "postinstall"], cwd=root, check=True)


def main(argv: list[str]) -> int:
    """Dispatch a command; 2 and a usage line for anything else."""
    if argv[:1] == ["split"] and len(argv) == 4:
        split(Path(argv[1]), Path(argv[2]), argv[3])
    elif argv[:1] == ["build"] and len(argv) == 2:
        build(Path(argv[1]))
    elif argv[:1] == ["finish"] and len(argv) == 3:
        finish(Path(argv[1]), argv[2])
    else:
        print(USAGE, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
