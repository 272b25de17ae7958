"""The layers' build-time shell, run for real on small fixtures (no engine needed)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from imagebuild.layers import base, trust_ca
from imagebuild.layers.model import FILES_DIR
from tests.unit.layer_fixtures import run_sh, script, serve

PEM = "-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"


def _fake_getconf(tmp_path: Path, answer: str) -> dict[str, str]:
    """A PATH whose getconf prints ``answer`` (empty: getconf fails, as on musl)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    body = f"echo '{answer}'" if answer else "exit 1"
    (bin_dir / "getconf").write_text(f"#!/bin/sh\n{body}\n")
    (bin_dir / "getconf").chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


@pytest.mark.parametrize(("answer", "ok"), [
    ("glibc 2.35", True), ("glibc 2.28", True), ("glibc 2.100", True),
    ("glibc 2.27", False), ("glibc 2.17", False), ("", False),
])
def test_glibc_check(tmp_path: Path, answer: str, ok: bool) -> None:
    """The base stage's first step passes glibc >= 2.28 and refuses anything else in one line."""
    result = run_sh(base.glibc_check(), env=_fake_getconf(tmp_path, answer))
    assert (result.returncode == 0) is ok
    if not ok:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1
        assert "code-server needs glibc 2.28 or newer" in lines[0]


def test_glibc_check_is_the_first_base_step() -> None:
    """The check runs before any package is installed (a bad base fails in seconds)."""
    assert base.layer().preflight == (base.glibc_check(),)


def test_kiro_unreachable_is_a_warning(tmp_path: Path) -> None:
    """An unreachable installer leaves the folder empty and the step succeeds, with a warning."""
    dest = tmp_path / "kiro"
    result = run_sh(f"sh {script('install-kiro.sh')} http://127.0.0.1:9/install {dest}", timeout=120)
    assert result.returncode == 0
    assert dest.is_dir()
    assert not any(dest.iterdir())
    assert "warning: Kiro CLI skipped" in result.stderr


def test_kiro_installer_result_is_kept(tmp_path: Path) -> None:
    """What the vendor installer puts in ~/.local/bin ends up in the folder."""
    www = tmp_path / "www"
    www.mkdir()
    installer = 'mkdir -p "$HOME/.local/bin"; printf "#!/bin/sh\\n" > "$HOME/.local/bin/kiro-cli"\n'
    (www / "install").write_text(installer)
    dest = tmp_path / "kiro"
    with serve(www) as url:
        result = run_sh(f"sh {script('install-kiro.sh')} {url}/install {dest}")
    assert result.returncode == 0
    assert (dest / "kiro-cli").is_file()
    assert "warning" not in result.stderr


def _ca_fixture(tmp_path: Path) -> tuple[Path, Path, str]:
    system = tmp_path / "system.crt"
    system.write_text(PEM.format(body="SYSTEMROOT"))
    bundle = tmp_path / "bundle.crt"
    bundle.write_text(PEM.format(body="SYSTEMROOT") + PEM.format(body="PROXYROOT"))
    return system, bundle, hashlib.sha256(bundle.read_bytes()).hexdigest()


def test_trust_ca_adds_only_new_certificates(tmp_path: Path) -> None:
    """Certificates the store already has are skipped; each new one gets its own file."""
    system, bundle, digest = _ca_fixture(tmp_path)
    dest = tmp_path / "added"
    env = {"SAGECODE_SYSTEM_BUNDLE": str(system), "SAGECODE_UPDATE_CA": "true"}
    result = run_sh(f"sh {script('install-ca.sh')} {digest} {bundle} {dest}", env=env)
    assert result.returncode == 0, result.stderr
    assert [p.read_text() for p in dest.iterdir()] == [PEM.format(body="PROXYROOT")]


def test_trust_ca_refuses_a_changed_bundle(tmp_path: Path) -> None:
    """The bundle must be the one whose digest is in the build text."""
    _, bundle, _ = _ca_fixture(tmp_path)
    result = run_sh(f"sh {script('install-ca.sh')} {'0' * 64} {bundle} {tmp_path / 'added'}")
    assert result.returncode != 0
    assert "changed after the build was planned" in result.stderr


def test_trust_ca_layer_names_the_bundle_digest(tmp_path: Path) -> None:
    """A new bundle is a new build step: its digest is in the stage's command."""
    _, bundle, digest = _ca_fixture(tmp_path)
    layer = trust_ca.layer(bundle)
    assert layer.stages[0].run == (f"install-ca {digest}",)
    assert ("NODE_EXTRA_CA_CERTS", "/etc/ssl/certs/ca-certificates.crt") in layer.env


def _fake_code_server(root: Path) -> None:
    modules = root / "lib/node_modules/code-server/lib/vscode/node_modules"
    for rel in ("node-pty/prebuilds/linux-x64/pty.node", "node-pty/prebuilds/darwin-arm64/pty.node",
                "node-pty/prebuilds/win32-x64/conpty.node", "rg/bin/linux-x64/rg", "rg/bin/linux-arm64/rg",
                "sdk/bin/x64/lxc-exec", "sdk/bin/arm64/lxc-exec", "sdk/bin/x64/helper.exe",
                "sqlite/build/Release/sqlite.node", "sqlite/build/Release/obj.target/sqlite.node",
                "sqlite/build/Release/sqlite.a", "sqlite/build/Makefile",
                "pkg/index.js.map", "pkg/index.d.ts", "pkg/types.d.cts", "pkg/README.md", "pkg/LICENSE.md",
                "pkg/docs/guide.md", "typescript/lib/lib.dom.d.ts", "typescript/lib/tsserver.js"):
        (modules / rel).parent.mkdir(parents=True, exist_ok=True)
        (modules / rel).write_text("x")
    vscode = root / "lib/node_modules/code-server/lib/vscode"
    for rel in ("out/main.js", "out/main.js.map", "src/vscode-dts/vscode.d.ts", "extensions/git/README.md"):
        (vscode / rel).parent.mkdir(parents=True, exist_ok=True)
        (vscode / rel).write_text("x")


def test_trim_keeps_what_this_platform_runs(tmp_path: Path) -> None:
    """Build leftovers, other platforms' binaries and files nothing reads go; this
    platform's modules, licences, TypeScript's lib, VS Code's own files and the
    extensions' READMEs stay."""
    _fake_code_server(tmp_path)
    result = run_sh(f"sh {script('trim-code-server.sh')} {tmp_path} x64")
    assert result.returncode == 0, result.stderr
    left = sorted(str(p.relative_to(tmp_path / "lib/node_modules/code-server/lib/vscode"))
                  for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["extensions/git/README.md",
                    "node_modules/node-pty/prebuilds/linux-x64/pty.node", "node_modules/pkg/LICENSE.md",
                    "node_modules/rg/bin/linux-x64/rg", "node_modules/sdk/bin/x64/lxc-exec",
                    "node_modules/sqlite/build/Release/sqlite.node",
                    "node_modules/typescript/lib/lib.dom.d.ts", "node_modules/typescript/lib/tsserver.js",
                    "out/main.js", "src/vscode-dts/vscode.d.ts"]


def test_mise_defaults_are_the_predecessors_runtimes() -> None:
    """The documented runtime set, installable on demand into the home."""
    result = run_sh(f"sh {script('mise-defaults.sh')} --dry-run")
    runtimes = "node@22 java@21 python@3.13 python@3.12 python@3.11 python@3.10"
    assert result.stdout.strip() == f"mise use -g {runtimes}"


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_layer_scripts_pass_shellcheck() -> None:
    """Every shipped shell script is shellcheck-clean."""
    scripts = sorted(str(p) for p in FILES_DIR.rglob("*.sh"))
    result = subprocess.run(["shellcheck", "-S", "style", *scripts], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout


def _npm_that_fails(tmp_path: Path, failures: int) -> dict[str, str]:
    """A PATH whose npm fails ``failures`` times (exit 1), then succeeds; calls are logged."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    (bin_dir / "npm").write_text(
        "#!/bin/sh\n"
        f"echo \"$*\" >> {log}\n"
        f"[ $(wc -l < {log}) -gt {failures} ] || {{ echo 'npm error code ETARGET' >&2; exit 1; }}\n"
    )
    (bin_dir / "npm").chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "SAGECODE_NPM_RETRY_S": "0"}


@pytest.mark.parametrize(("failures", "ok"), [(0, True), (2, True), (3, False)])
def test_build_steps_try_npm_three_times(tmp_path: Path, failures: int, ok: bool) -> None:
    """A step's npm is run again after a failure (a CDN's stale package list), at most 3 times,
    with its arguments unchanged, and the last failure's status is the step's."""
    netenv = Path(__file__).parents[2] / "imagebuild" / "build_scripts" / "netenv.sh"
    env = _npm_that_fails(tmp_path, failures)
    result = subprocess.run(["sh", "-c", f". {netenv} && npm install -g 'a b' c"], env=env,
                            capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert (result.returncode == 0) is ok, result.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == ["install -g a b c"] * min(failures + 1, 3)
    assert result.stderr.count("trying again") == min(failures, 2)
