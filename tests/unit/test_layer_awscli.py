"""The AWS CLI: v1 from PyPI by default; v2 from AWS's installer, only with a good signature.

AWS's download site is unreachable here, so the v2 path is exercised against a local
fixture: a throwaway key signs a fake installer zip, and the real verification script
must accept it only with that key's fingerprint and an untouched zip.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagebuild import layers, resolve
from imagebuild.config import BuildConfig
from imagebuild.errors import UsageError
from imagebuild.layers import awscli
from imagebuild.layers.model import Want
from tests.conftest import VERSIONS
from tests.unit.layer_fixtures import run_sh, script, serve

needs_gpg = pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg is not installed")


def _gpg(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["gpg", "--batch", "--homedir", str(home), *args], capture_output=True,
                          text=True, check=True, timeout=120)


@pytest.fixture
def signer(tmp_path: Path) -> Iterator[tuple[Path, Path, str]]:
    """A throwaway signing key: its GNUPGHOME, exported public key and fingerprint."""
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    _gpg(home, "--passphrase", "", "--quick-gen-key", "Test Signer <test@example.invalid>", "rsa2048", "sign")
    colons = _gpg(home, "--with-colons", "--list-keys").stdout
    fingerprint = next(line.split(":")[9] for line in colons.splitlines() if line.startswith("fpr"))
    public = tmp_path / "test.asc"
    public.write_text(_gpg(home, "--armor", "--export", fingerprint).stdout)
    yield home, public, fingerprint
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False, capture_output=True)


def _installer_zip(path: Path) -> None:
    """A zip shaped like AWS's: aws/install puts an `aws` that prints its version."""
    install = ('#!/bin/sh\nset -e\nmkdir -p "$4"\n'
               'printf "#!/bin/sh\\necho aws-cli/2.0.0\\n" > "$4/aws"\nchmod +x "$4/aws"\n')
    with zipfile.ZipFile(path, "w") as z:
        info = zipfile.ZipInfo("aws/install")
        info.external_attr = 0o755 << 16
        z.writestr(info, install)


def _publish(www: Path, home: Path, tamper: bool = False) -> None:
    zip_path = www / "awscli.zip"
    _installer_zip(zip_path)
    _gpg(home, "--detach-sign", "--output", str(www / "awscli.zip.sig"), str(zip_path))
    if tamper:
        with zipfile.ZipFile(zip_path, "a") as z:
            z.writestr("aws/extra", "not signed")


def _install(url: str, key: Path, fingerprint: str, prefix: Path) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(prefix.parent)}  # a gpg of the host's user must not be touched
    return run_sh(f"sh {script('install-awscli-v2.sh')} {url} {key} {fingerprint} {prefix}", env=env)


@needs_gpg
def test_v2_installs_with_good_signature(signer: tuple[Path, Path, str], tmp_path: Path) -> None:
    """A zip signed by the expected key is unpacked and its installer run into the prefix."""
    home, public, fingerprint = signer
    www = tmp_path / "www"
    www.mkdir()
    _publish(www, home)
    with serve(www) as base:
        result = _install(f"{base}/awscli.zip", public, fingerprint, tmp_path / "opt")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "opt/bin/aws").is_file()


@needs_gpg
def test_v2_refuses_tampered_zip(signer: tuple[Path, Path, str], tmp_path: Path) -> None:
    """A zip changed after signing is refused and nothing is installed."""
    home, public, fingerprint = signer
    www = tmp_path / "www"
    www.mkdir()
    _publish(www, home, tamper=True)
    with serve(www) as base:
        result = _install(f"{base}/awscli.zip", public, fingerprint, tmp_path / "opt")
    assert result.returncode != 0
    assert "refusing it" in result.stderr
    assert not (tmp_path / "opt").exists()


@needs_gpg
def test_v2_refuses_signature_by_other_key(signer: tuple[Path, Path, str], tmp_path: Path) -> None:
    """A good signature by a key other than AWS's (by fingerprint) is refused."""
    home, public, _ = signer
    www = tmp_path / "www"
    www.mkdir()
    _publish(www, home)
    with serve(www) as base:
        result = _install(f"{base}/awscli.zip", public, awscli.V2_FINGERPRINT, tmp_path / "opt")
    assert result.returncode != 0
    assert awscli.V2_FINGERPRINT in result.stderr


@needs_gpg
def test_v2_shipped_key_is_aws_cli_team(tmp_path: Path) -> None:
    """The shipped public key is the AWS CLI Team's, with the fingerprint AWS publishes."""
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    shown = _gpg(home, "--with-colons", "--show-keys", str(awscli.V2_KEY.path)).stdout
    assert f"fpr:::::::::{awscli.V2_FINGERPRINT}:" in shown
    assert "aws-cli@amazon.com" in shown


def test_v2_rendered_steps_verify_before_install(config: BuildConfig) -> None:
    """The v2 stage downloads the versioned zip for the platform and checks AWS's key."""
    versions = {**VERSIONS, "awscli": "2.27.0", "awscli-source": "v2"}
    arm = dataclasses.replace(config, platform="arm64")
    layer = next(x for x in layers.compose(arm, versions) if x.name == "awscli")
    stage = layer.stages[0]
    assert stage.build_tools == ("gnupg",)
    assert stage.run == (
        "install-awscli-v2 https://awscli.amazonaws.com/awscli-exe-linux-aarch64-2.27.0.zip "
        f"{awscli.V2_KEY.dest} FB5DB77FD5C118B80511ADA8A6310ACC4672475C /opt/awscli",
    )
    assert awscli.V2_KEY in stage.files


def test_v2_platform_selection() -> None:
    """amd64 is x86_64 and arm64 is aarch64 in AWS's file names; others are refused."""
    assert awscli.v2_url("2.1.0", "amd64").endswith("awscli-exe-linux-x86_64-2.1.0.zip")
    assert awscli.v2_url("2.1.0", "arm64").endswith("awscli-exe-linux-aarch64-2.1.0.zip")
    with pytest.raises(UsageError, match="linux/s390x"):
        awscli.v2_url("2.1.0", "s390x")


def test_v2_needs_exact_version() -> None:
    """v2 has no version index reachable from a build: 'latest' is a one-line error."""
    want = awscli.wants("latest", "v2")[0]
    with pytest.raises(UsageError, match="no version index"):
        resolve._exact(want)
    assert resolve._exact(Want("awscli", "v2", "x", "2.27.0")) == "2.27.0"


def test_pypi_is_the_default_source(config: BuildConfig) -> None:
    """By default the CLI is awscli from PyPI, in its own venv, linked onto PATH."""
    layer = next(x for x in layers.compose(config, VERSIONS) if x.name == "awscli")
    assert awscli.wants("latest", config.aws_cli_source) == (Want("awscli", "pypi", "awscli", "latest"),)
    assert "awscli==1.46.3" in layer.stages[0].run[0]
    assert {(x.path, x.target) for x in layer.links} == {
        ("/usr/local/bin/aws", "/opt/awscli/bin/aws"),
        ("/usr/local/bin/aws_completer", "/opt/awscli/bin/aws_completer"),
    }
    assert layer.run == ()


def test_pypi_resolution_records_source(config: BuildConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PyPI version is resolved by pip and the lock records where it came from."""
    class FakePip:
        def view_version(self, package: str, spec: str) -> str:
            return "1.46.3" if (package, spec) == ("awscli", "latest") else "?"

    monkeypatch.setattr(resolve, "PipClient", FakePip)
    out = resolve._resolve_one(config, Want("awscli", "pypi", "awscli", "latest"), None)
    assert out == {"awscli": "1.46.3", "awscli-source": "pypi"}
