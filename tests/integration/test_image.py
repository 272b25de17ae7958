"""The developer image, for real: every layer's verify script, the entrypoint's modes,
code-server serving, and every layer of the saved tar free of build tools and secrets.

The image is the session's ``dev_image`` (built once, from ``local/debian:bookworm`` with
the npm and PyPI sources and the host's CA bundle). Containers started here are named
``sagecode-test-*`` and always removed.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from imagebuild import layers
from imagebuild.config import BuildConfig
from imagebuild.layers import entrypoint
from imagebuild.layers.model import Layer
from imagebuild.manifest import Manifest
from imagebuild.paths import StatePaths
from imagebuild.store import ImageStore
from tests.integration.conftest import BASE_IMAGE, CA_BUNDLE, build_args, imagebuild, need, saved_tar
from tests.integration.tarscan import BUILD_TOOL, scan_tar

pytestmark = [pytest.mark.image, pytest.mark.engine]
DEFAULT_LAYERS = [n for n in layers.ORDER if n not in layers.OPTIONAL]
TOKEN = "ghp_sagecodeFakeToken0123456789"
PROXY_PASSWORD = "FakeProxyPassw0rd"
INDEX_TOKEN = "FakeIndexToken42"
AWS_SECRET = "sagecodeFakeAwsSecretKey/0123456789abcdefghij"
AWS_SESSION = "sagecodeFakeAwsSessionToken0123456789"
FAKE_SECRETS = {
    "GITHUB_TOKEN": TOKEN,
    "HTTPS_PROXY": f"http://sagecode:{PROXY_PASSWORD}@proxy.invalid:3128",
    "https_proxy": f"http://sagecode:{PROXY_PASSWORD}@proxy.invalid:3128",
    "PIP_INDEX_URL": f"https://aws:{INDEX_TOKEN}@pypi.invalid/simple",
    "AWS_ACCESS_KEY_ID": "AKIASAGECODEFAKE0001",
    "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
    "AWS_SESSION_TOKEN": AWS_SESSION,
}
SECRETS = [TOKEN.encode(), PROXY_PASSWORD.encode(), INDEX_TOKEN.encode(), AWS_SECRET.encode(),
           AWS_SESSION.encode()]


def docker(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The docker CLI; a failure shows its output."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        output = result.stdout[-2000:] + result.stderr[-2000:]
        raise AssertionError(f"docker {' '.join(args)} failed:\n{output}")
    return result


def name(purpose: str) -> str:
    """A container name this test owns."""
    return f"sagecode-test-{purpose}-{uuid.uuid4().hex[:8]}"


def run(image: str, *args: str, opts: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """A throwaway container of ``image`` through its entrypoint."""
    return docker("run", "--rm", "--init", "--name", name("run"), *opts, image, *args, check=False)


def composed(m: Manifest) -> tuple[Layer, ...]:
    """The layers the image was built from, remade from its manifest."""
    config = BuildConfig(
        state=StatePaths(Path("/nonexistent")),
        base_image=m.base_image,
        platform=m.platform,
        disabled=frozenset(layers.ORDER) - set(m.layers),
        extra_layers=frozenset(m.layers) & layers.OPTIONAL,
    )
    return layers.compose(config, m.versions)


@pytest.mark.parametrize("layer_name", DEFAULT_LAYERS)
def test_layer_verify(dev_image: Manifest, layer_name: str) -> None:
    """Each layer's verify script passes inside the image."""
    layer = next(x for x in composed(dev_image) if x.name == layer_name)
    script = "set -e\n" + "\n".join(layer.verify)
    result = run(dev_image.image, "sh", "-c", script)
    assert result.returncode == 0, f"{layer_name}: {result.stdout}{result.stderr}"


def test_code_server_version_equals_lock(dev_image: Manifest) -> None:
    """`code-server --version` (the entrypoint's code-server mode) prints the locked version."""
    result = run(dev_image.image, "--version")
    assert result.stdout.splitlines()[-1].split()[0] == dev_image.versions["code-server"]


def test_entrypoint_no_arguments_is_a_login_shell(dev_image: Manifest) -> None:
    """No arguments: the user's login shell, zsh."""
    argv = ["docker", "run", "--rm", "-i", "--init", "--name", name("shell"), dev_image.image]
    result = subprocess.run(
        argv,
        input='echo "shell=$0 login=$options[login]"\n',
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "shell=" in result.stdout
    assert "zsh" in result.stdout
    assert "login=on" in result.stdout


def test_entrypoint_command_runs_it(dev_image: Manifest) -> None:
    """A first argument that is not an option is run as the command."""
    assert run(dev_image.image, "echo", "hello from sagecode").stdout.strip() == "hello from sagecode"


def test_first_start_as_the_session_user(dev_image: Manifest) -> None:
    """Started as root with SAGECODE_UID, the defaults land in HOME owned by that user, once."""
    opts = (
        "--tmpfs",
        "/home/u:rw,mode=1777",
        "-e",
        "HOME=/home/u",
        "-e",
        "SAGECODE_UID=4321",
        "-e",
        "SAGECODE_GID=4321",
        "-e",
        "AWS_REGION=eu-west-1",
    )
    script = "id -u; stat -c %u ~/.claude/settings.json; cat ~/.claude/settings.json ~/.aws/config"
    result = run(dev_image.image, "sh", "-c", script, opts=opts)
    lines = result.stdout.splitlines()
    assert lines[:2] == ["4321", "4321"], result.stderr
    assert '"AWS_REGION": "eu-west-1"' in result.stdout
    assert "region = eu-west-1" in result.stdout


def test_first_start_is_fast(dev_image: Manifest) -> None:
    """The first-start script costs the session start well under a second."""
    timed = (
        "python3 - <<'EOF'\nimport subprocess, time\nt = time.monotonic()\n"
        f"subprocess.run(['python3', '{entrypoint.LIB}/first_start.py', 'shell'], check=True)\n"
        "print(time.monotonic() - t)\nEOF"
    )
    result = run(dev_image.image, "sh", "-c", timed, opts=("--tmpfs", "/home/u:rw", "-e", "HOME=/home/u"))
    assert float(result.stdout.strip().splitlines()[-1]) < 1.0, result.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthz(port: int, deadline_s: float) -> int:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                return int(r.status)
        except OSError:
            if time.monotonic() > deadline:
                return 0
            time.sleep(1)


@contextmanager
def code_server(image: str) -> Iterator[tuple[int, str]]:
    """``image``'s code-server on a free 127.0.0.1 port, a tmpfs home: port and container,
    removed after the block."""
    port, container = _free_port(), name("code-server")
    docker("run", "-d", "--init", "--name", container, "-p", f"127.0.0.1:{port}:8080",
           "--tmpfs", "/home/u:rw,mode=1777", "-e", "HOME=/home/u", image,
           "--bind-addr", "0.0.0.0:8080", "--auth", "none")  # fmt: skip
    try:
        yield port, container
    finally:
        docker("rm", "-f", container, check=False)


def test_code_server_serves_healthz(dev_image: Manifest) -> None:
    """code-server in the image answers /healthz; extension installs run in the background."""
    with code_server(dev_image.image) as (port, container):
        assert _healthz(port, 90) == 200
        log = docker("exec", container, "cat", "/home/u/.local/state/sagecode/extensions.log", check=False)
        assert "extension(s) from the gallery" in log.stdout


def proxy_ca_lines() -> list[bytes]:
    """Base64 lines from the middle of the host's private (proxy) CA certificates."""
    certs = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    need(bool(certs), "no private CA certificate under /usr/local/share/ca-certificates to look for")
    return [c.read_text().splitlines()[3].encode() for c in certs]


def _saved_tar(state: Path) -> Path:
    return saved_tar(state, state.parent / f"{state.name}-saved.tar")


def test_old_glibc_base_is_refused(docker_engine: None, tmp_path: Path) -> None:
    """A base image with glibc < 2.28 fails the build at its first step, saying why."""
    base = f"{name('old-glibc')}:1"
    (tmp_path / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE}\nRUN printf '#!/bin/sh\\necho glibc 2.24\\n' > /usr/local/bin/getconf"
        " && chmod +x /usr/local/bin/getconf\n")
    docker("build", "-q", "-t", base, str(tmp_path))
    try:
        result = imagebuild(tmp_path / "state", "--base-image", base, "--without",
                            "node,code-server,awscli,mise,agents,editor", check=False)
    finally:
        docker("rmi", "-f", base, check=False)
    assert result.returncode == 2
    assert "error: the base image has glibc 2.24; code-server needs glibc 2.28 or newer" in result.stderr


def test_build_tool_pattern() -> None:
    """The scan's file-name pattern knows compilers and make, and nothing else."""
    tools = ["usr/bin/gcc", "usr/bin/gcc-12", "usr/bin/g++", "usr/bin/make", "usr/local/bin/cc",
             "usr/bin/x86_64-linux-gnu-gcc-12", "usr/lib/gcc/x86_64-linux-gnu/12/cc1plus"]
    others = ["usr/bin/gcc-ar-12", "usr/lib/gcc/x86_64-linux-gnu/12/liblto_plugin.so", "opt/node/bin/npm",
              "usr/share/doc/make/README", "usr/bin/makeconv"]
    assert [t for t in tools if not BUILD_TOOL.search(t)] == []
    assert [o for o in others if BUILD_TOOL.search(o)] == []


def test_saved_tar_has_no_build_tools_nor_ca_secret(dev_image: Manifest, image_state: Path) -> None:
    """No compiler or make in any layer; the CA bundle given as a secret is in none either."""
    needles = proxy_ca_lines()
    tools, found = scan_tar(_saved_tar(image_state), needles)
    assert tools == []
    assert found == set()
    history = docker("history", "--no-trunc", dev_image.image).stdout
    assert not any(n.decode() in history for n in needles)


@dataclass(frozen=True)
class SmallBuild:
    """A small image built (without cache) with fake credentials in its environment, the
    CA bundle trusted (--trust-ca) and Kiro asked for (--with kiro, unreachable here)."""

    state: Path
    output: str

    @property
    def image(self) -> str:
        """The image's content tag."""
        current = ImageStore(self.state / "images").current()
        assert current is not None
        return current.image


@pytest.fixture(scope="module")
def small_build(docker_engine: None, tmp_path_factory: pytest.TempPathFactory) -> SmallBuild:
    """One small build that three tests read."""
    need(Path(CA_BUNDLE).is_file(), f"no CA bundle at {CA_BUNDLE} for --trust-ca")
    state = tmp_path_factory.mktemp("small-build")
    with pytest.MonkeyPatch.context() as env:
        for key, value in FAKE_SECRETS.items():
            env.setenv(key, value)
        result = imagebuild(state, *build_args(), "--no-cache", "--trust-ca", "--with", "kiro",
                            "--without", "node,code-server,awscli,mise,agents,editor")
    return SmallBuild(state, result.stderr)


def test_no_token_or_proxy_credentials_in_image(small_build: SmallBuild) -> None:
    """Tokens, proxy and AWS credentials reach the build only as a secret: in no layer, config or history."""
    needles = SECRETS
    _, found = scan_tar(_saved_tar(small_build.state), needles)
    assert found == set()
    inspect = docker("image", "inspect", small_build.image).stdout
    inspect += docker("history", "--no-trunc", small_build.image).stdout
    assert not [n for n in needles if n.decode() in inspect]
    assert "proxy.invalid" not in inspect


def test_no_secret_in_build_output_or_state_files(small_build: SmallBuild) -> None:
    """The build's output and every file it left in the state dir (manifests, logs, locks) hold
    no token, proxy or AWS credential and no line of the CA bundle (the tar has its own scan)."""
    needles = [*SECRETS, *proxy_ca_lines()]
    assert [n for n in needles if n.decode() in small_build.output] == []
    files = [p for p in small_build.state.rglob("*") if p.is_file() and p.suffix != ".tar"]
    assert any(p.suffix == ".json" for p in files)  # the scan has something to read
    leaks = [(p.name, n.decode()) for p in files for n in needles if n in p.read_bytes()]
    assert leaks == []


def test_kiro_unreachable_is_skipped_with_warning(small_build: SmallBuild) -> None:
    """--with kiro on a machine that cannot reach its installer: built anyway, with a warning."""
    assert "warning: Kiro CLI skipped" in small_build.output
    assert run(small_build.image, "test", "-d", "/opt/kiro/bin").returncode == 0


def test_trust_ca_makes_tools_trust_the_proxy(small_build: SmallBuild, dev_image: Manifest) -> None:
    """With --trust-ca, HTTPS through the TLS-inspecting proxy works in the container; without, not."""
    needles = proxy_ca_lines()
    probe = ("curl -sS -o /dev/null https://registry.npmjs.org/ && "
             "python3 -c 'import urllib.request; urllib.request.urlopen(\"https://pypi.org/simple/\")' && "
             'test "$NODE_EXTRA_CA_CERTS" = /etc/ssl/certs/ca-certificates.crt')
    trusted = run(small_build.image, "sh", "-c", probe)
    assert trusted.returncode == 0, trusted.stderr
    stored = run(small_build.image, "cat", "/etc/ssl/certs/ca-certificates.crt").stdout
    assert all(n.decode() in stored for n in needles)
    # The same scan that finds no CA in the developer image finds it here: it can fail.
    _, found = scan_tar(_saved_tar(small_build.state), needles)
    assert found == set(needles)
    untrusted = run(dev_image.image, "curl", "-sS", "-o", "/dev/null", "https://registry.npmjs.org/")
    assert untrusted.returncode != 0
