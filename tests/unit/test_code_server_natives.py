"""code-server's native modules, compiled apart: which packages, what is copied, what runs.

The helper runs in the builder stages on the image's python3; here it runs on fake
package trees, and ``build``/``finish`` call the host's real npm (install scripts that
write a marker instead of compiling, so nothing needs the network or a compiler).
"""

from __future__ import annotations

import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from imagebuild.layers import code_server
from imagebuild.layers.model import FILES_DIR
from tests.unit.layer_fixtures import load_script

SCRIPT = FILES_DIR / "code-server-natives.py"
MARK = "require('fs').appendFileSync('ran.txt', process.env.npm_lifecycle_event + '\\n')"


natives = load_script(SCRIPT, "code_server_natives")


def _package(folder: Path, name: str, version: str = "1.0.0", **meta: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text(json.dumps({"name": name, "version": version, **meta}))
    (folder / "index.js").write_text(f"module.exports = {name!r};\n")
    return folder


def _tree(root: Path, *, extra: str = "") -> Path:
    """A code-server-shaped tree: a root package, a vscode project, natives and others."""
    _package(root, "code-server", "4.0.0" if not extra else "4.0.1",
             scripts={"postinstall": f"node -e \"{MARK}\""})
    vs = root / "lib/vscode"
    _package(vs, "code-oss")
    mods = vs / "node_modules"
    # compiles: binding.gyp, no prebuilt module; needs a hoisted and a nested dependency
    sql = _package(mods / "@vscode/sqlite3", "@vscode/sqlite3", "5.1.12",
                   dependencies={"node-addon-api": "^7", "tar": "^6"},
                   optionalDependencies={"not-installed": "1"},
                   scripts={"install": f"node -e \"{MARK}\""})
    (sql / "binding.gyp").write_text("{}")
    _package(mods / "node-addon-api", "node-addon-api", "7.1.0")
    _package(sql / "node_modules/tar", "tar", "6.2.1", dependencies={"chownr": "^2"})
    _package(mods / "tar", "tar", "7.0.0")
    _package(mods / "chownr", "chownr", "2.0.0")
    # compiles too: the binding.gyp is in a sub-folder (as in ssh2)
    ssh = _package(mods / "ssh2", "ssh2", "1.17.0", scripts={"install": "node install.js"})
    (ssh / "lib/crypto").mkdir(parents=True)
    (ssh / "lib/crypto/binding.gyp").write_text("{}")
    # prebuilt for linux-x64 only: node-gyp-build picks it, nothing compiles on x64
    pty = _package(mods / "node-pty", "node-pty", "1.2.0", scripts={"install": f"node -e \"{MARK}\""})
    (pty / "binding.gyp").write_text("{}")
    (pty / "prebuilds/linux-x64").mkdir(parents=True)
    (pty / "prebuilds/linux-x64/pty.node").write_bytes(b"\x7fELF")
    # a script, no native code (downloads or picks a binary)
    _package(mods / "koffi", "koffi", "3.2.1" if extra else "3.1.2", scripts={"install": "node cnoke.cjs"})
    _package(mods / "plain", "plain")
    if extra:
        _package(mods / extra, extra)
    return root


def test_classify_splits_compiled_from_prebuilt(tmp_path: Path) -> None:
    root = _tree(tmp_path / "cs")
    native, prebuilt = natives.classify(root, "x64")
    assert native == ["lib/vscode/node_modules/@vscode/sqlite3", "lib/vscode/node_modules/ssh2"]
    assert prebuilt == ["lib/vscode/node_modules/koffi", "lib/vscode/node_modules/node-pty"]


def test_classify_compiles_what_has_no_module_for_the_arch(tmp_path: Path) -> None:
    root = _tree(tmp_path / "cs")
    native, _ = natives.classify(root, "arm64")
    assert "lib/vscode/node_modules/node-pty" in native


def test_closure_follows_node_resolution(tmp_path: Path) -> None:
    """Nested before hoisted, transitive, a missing optional dependency skipped."""
    root = _tree(tmp_path / "cs")
    assert natives.closure(root, ["lib/vscode/node_modules/@vscode/sqlite3"]) == [
        "lib/vscode/node_modules/@vscode/sqlite3",
        "lib/vscode/node_modules/@vscode/sqlite3/node_modules/tar",
        "lib/vscode/node_modules/chownr",
        "lib/vscode/node_modules/node-addon-api",
    ]


def test_split_copies_the_same_bytes_for_releases_with_the_same_natives(tmp_path: Path) -> None:
    """What makes BuildKit reuse the compiled stage: a new release with other packages and
    another version of a prebuilt one gives the same folder, byte for byte."""
    one = _tree(tmp_path / "one")
    two = _tree(tmp_path / "two", extra="left-pad")
    natives.split(one, tmp_path / "out1", "x64")
    natives.split(two, tmp_path / "out2", "x64")
    compared = filecmp.dircmp(tmp_path / "out1", tmp_path / "out2")
    assert _same(compared)
    copied = sorted(str(p.relative_to(tmp_path / "out1")) for p in (tmp_path / "out1").rglob("package.json"))
    assert copied == [
        "lib/vscode/node_modules/@vscode/sqlite3/node_modules/tar/package.json",
        "lib/vscode/node_modules/@vscode/sqlite3/package.json",
        "lib/vscode/node_modules/chownr/package.json",
        "lib/vscode/node_modules/node-addon-api/package.json",
        "lib/vscode/node_modules/ssh2/package.json",
    ]


def _same(compared: filecmp.dircmp[str]) -> bool:
    if compared.left_only or compared.right_only or compared.diff_files or compared.funny_files:
        return False
    return all(_same(sub) for sub in compared.subdirs.values())


def test_split_names_the_natives_with_their_versions(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    natives.split(_tree(tmp_path / "cs"), tmp_path / "out", "x64")
    out = capsys.readouterr().out
    assert "2 packages compile: @vscode/sqlite3@5.1.12 ssh2@1.17.0" in out
    held = re.search(r"their folder holds (\d+) packages: (.*)", out)
    assert held is not None
    assert "@vscode/sqlite3@5.1.12" in held.group(2).split()
    assert int(held.group(1)) == len(held.group(2).split()) > 2


@pytest.mark.skipif(shutil.which("npm") is None, reason="needs npm")
def test_build_then_finish_run_each_script_once_with_npm(tmp_path: Path) -> None:
    """build runs the natives' scripts in the copy; after the copy is laid over the tree,
    finish runs the other packages' scripts and code-server's postinstall, not the natives'."""
    root = _tree(tmp_path / "cs")
    out = tmp_path / "out"
    env = dict(os.environ, npm_config_offline="true", npm_config_audit="false",
               npm_config_fund="false")
    subprocess.run([sys.executable, str(SCRIPT), "split", str(root), str(out), "x64"], check=True, env=env)
    # ssh2's install.js would compile; here it only marks that it ran
    for where in (root, out):
        marks_ssh2 = MARK.replace("process.env.npm_lifecycle_event", "'ssh2'")
        (where / "lib/vscode/node_modules/ssh2/install.js").write_text(marks_ssh2 + ";\n")
    (root / "lib/vscode/node_modules/koffi/cnoke.cjs").write_text(MARK + ";\n")
    subprocess.run([sys.executable, str(SCRIPT), "build", str(out)], check=True, env=env, capture_output=True)
    assert (out / "lib/vscode/node_modules/@vscode/sqlite3/ran.txt").read_text() == "install\n"
    shutil.copytree(out, root, dirs_exist_ok=True, symlinks=True)
    subprocess.run([sys.executable, str(SCRIPT), "finish", str(root), "x64"], check=True, env=env,
                   capture_output=True)
    mods = root / "lib/vscode/node_modules"
    assert (mods / "@vscode/sqlite3/ran.txt").read_text() == "install\n"  # not run again
    assert (mods / "node-pty/ran.txt").read_text() == "install\n"
    assert (mods / "koffi/ran.txt").read_text() == "install\n"
    assert (mods / "ssh2/ran.txt").read_text() == "ssh2\n"  # from the copy, once
    assert (root / "ran.txt").read_text() == "postinstall\n"
    assert not (root / natives.LIST).exists()


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert natives.main(["split", "only-one"]) == 2
    assert "split ROOT OUT ARCH" in capsys.readouterr().err


def test_npm_stages_compile_apart_from_the_download() -> None:
    """The natives stage starts from the tools stage, not from the download, and gets only
    the split-off folder: its cache key is those bytes, not the code-server version. The
    download and the last step grow on Node's trunk stage, with no build tools."""
    stages = {s.name: s for s in code_server.npm_stages("4.139.1", "arm64")}
    assert list(stages) == ["code-server-tools", "code-server-helpers", "code-server-fetch",
                            "code-server-natives-src", "code-server-natives", "code-server"]
    assert stages["code-server-fetch"].parent == "node-runtime"
    assert stages["code-server"].parent == "code-server-fetch"
    assert stages["code-server-natives-src"].parent == "code-server-tools"
    assert [(m.stage, m.src) for m in stages["code-server-natives-src"].mounts] == [
        ("code-server-fetch", code_server.PREFIX)]
    assert stages["code-server-natives"].parent == "code-server-tools"
    assert [c.stage for c in stages["code-server-natives"].copies] == ["code-server-natives-src"]
    assert "--ignore-scripts" in stages["code-server-fetch"].run[0]
    assert "4.139.1" not in "".join(stages["code-server-natives"].run + stages["code-server-natives-src"].run)
    last = stages["code-server"]
    # the compiled packages are mounted from their stage and copied in by the same step
    assert [(m.stage, m.src) for m in last.mounts] == [("code-server-helpers", "/"),
                                                       ("code-server-natives", code_server.NATIVES)]
    steps = last.run[0].split(" &&\n")
    assert steps[0] == f"cp -au {code_server.NATIVES_MOUNT}/. /opt/code-server/lib/node_modules/code-server/"
    helpers, package = code_server.HELPERS_MOUNT, "/opt/code-server/lib/node_modules/code-server"
    assert steps[1] == f"python3 {helpers}/code-server-natives finish {package} arm64"
    assert steps[-1] == f"sh {helpers}/trim-code-server /opt/code-server arm64"
