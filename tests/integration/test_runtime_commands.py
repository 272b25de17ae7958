"""``sagecode status``, ``doctor``, ``shell`` and ``logs`` for real, against the engine and the image."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagebuild.console import human
from imagebuild.manifest import Manifest
from runtime.images import describe
from tests.integration.credential_support import bridge_gateway
from tests.integration.runtime_support import Sandbox, docker, free_port, get, make_sandbox, me
from tests.unit.runtime_fakes import FakeIMDS

pytest_plugins = ["tests.integration.runtime_fixtures", "tests.integration.credential_fixtures"]
IDENTITY = "arn:aws:sts::123456789012:user/moto (account 123456789012)"
pytestmark = [pytest.mark.engine, pytest.mark.image]


@pytest.fixture
def saved_box(editor_image: Manifest, editor_state: Path) -> Iterator[Sandbox]:
    """A sandbox whose state also holds the saved tar (hard-linked), as on an instance."""
    box = make_sandbox(me(), editor_image, saved=editor_state / "images")
    yield box
    box.close()


@pytest.fixture
def jupyter_env(tmp_path: Path) -> Path:
    """A Jupyter environment with jupyter-server-proxy 4.6.1's metadata (all doctor reads)."""
    meta = tmp_path / "env" / "lib" / "python3.11" / "site-packages" / "jupyter_server_proxy-4.6.1.dist-info"
    meta.mkdir(parents=True)
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: jupyter-server-proxy\nVersion: 4.6.1\n")
    return tmp_path / "env"


def lines(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """``label: text`` lines as a dict."""
    assert result.returncode == 0, result.stderr
    pairs = (line.split(":", 1) for line in result.stdout.splitlines())
    return {label: text.strip() for label, text in pairs}


def imds_env(imds: FakeIMDS, sts: str) -> dict[str, str]:
    """The SDKs' variables pointing doctor at the stand-ins: IMDS (the only credentials) and STS."""
    return {"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url, "AWS_ENDPOINT_URL_STS": sts,
            "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}  # fmt: skip


def test_status_reports_image_tar_container_and_activity(saved_box: Sandbox, editor_image: Manifest) -> None:
    """status names the image and versions, the saved image and its size, the container and the heartbeat."""
    before = lines(saved_box.sagecode("status"))
    assert before["image"] == f"{describe(editor_image)}, built {editor_image.created}"
    layout = saved_box.state / "images" / "oci"
    assert before["saved"] == f"{layout} ({editor_image.saved_as}) ({human(editor_image.tar_bytes)})"
    assert before["engine"] == f"has {editor_image.image}"
    assert before["container"] == f"{saved_box.name} is not running"
    assert before["url"] == "/codeserver/"
    assert before["heartbeat"].startswith("no activity recorded yet")
    launch = saved_box.launch_tcp()
    launch.wait_ready()
    get(launch.port, None, "/")
    after = lines(saved_box.sagecode("status"))
    assert after["container"] == f"{saved_box.name} is running"
    assert after["heartbeat"].startswith("last activity ")


def test_doctor_passes_with_container_reaching_credentials(
    saved_box: Sandbox, jupyter_env: Path, moto_sts: str
) -> None:
    """On this rootful engine every check is OK; credentials come from a stand-in IMDS on the bridge."""
    with FakeIMDS(host=bridge_gateway()) as imds:
        done = saved_box.sagecode("doctor", "--jupyter-env", str(jupyter_env), env=imds_env(imds, moto_sts))
    out = done.stdout.splitlines()
    version = docker("version", "-f", "{{.Server.Version}}").stdout.strip()
    assert f"OK       engine: Docker {version}" in out
    assert "OK       user mapping: rootful: the editor runs as uid 0 (root), gid 0" in out
    assert any(line.startswith("OK       builder: buildx ") for line in out), out
    assert any(line.startswith("OK       volume space: ") for line in out), out
    assert f"OK       jupyter-server-proxy: 4.6.1 in {jupyter_env}" in out
    assert "OK       instance credentials: a container reaches the role nb-role (IMDSv2)" in out
    assert f"OK       AWS identity: a container gets {IDENTITY} through the relay" in out
    assert out[-1] == "0 problem(s), 0 warning(s)"
    assert done.returncode == 0


def test_doctor_identity_through_the_relay_when_containers_cannot_reach_imds(
    saved_box: Sandbox, jupyter_env: Path, moto_sts: str
) -> None:
    """An IMDS only the host reaches (loopback here) is fine with the relay: containers get an identity."""
    with FakeIMDS(host="127.0.0.1") as imds:
        done = saved_box.sagecode("doctor", "--jupyter-env", str(jupyter_env), env=imds_env(imds, moto_sts))
    out = done.stdout.splitlines()
    assert any(line.startswith("OK       instance credentials: the host reaches the role nb-role; the editor "
                               "gets it through the relay") for line in out), out  # fmt: skip
    assert f"OK       AWS identity: a container gets {IDENTITY} through the relay" in out
    assert done.returncode == 0, done.stdout


def test_doctor_problem_when_the_container_gets_no_identity(saved_box: Sandbox, jupyter_env: Path) -> None:
    """STS unreachable from the container: one problem line naming the endpoint, with what to do; exit 1."""
    closed = f"http://{bridge_gateway()}:{free_port()}"
    with FakeIMDS(host="127.0.0.1") as imds:
        done = saved_box.sagecode("doctor", "--jupyter-env", str(jupyter_env), env=imds_env(imds, closed))
    problems = [line for line in done.stdout.splitlines() if line.startswith("problem  ")]
    assert len(problems) == 1, done.stdout
    said = f"problem  AWS identity: a container gets no identity: cannot reach STS at {closed}"
    assert problems[0].startswith(said)
    assert "set AWS_ENDPOINT_URL_STS" in done.stdout
    assert not [key for key in FakeIMDS.KEYS.values() if key in done.stdout + done.stderr]
    assert done.returncode == 1


def test_doctor_problem_when_only_the_host_reaches_credentials(saved_box: Sandbox, jupyter_env: Path) -> None:
    """Without the relay, an IMDS the host reaches but a bridged container cannot is a problem: exit 1."""
    off = {"SAGECODE_CREDENTIALS": "off"}
    with FakeIMDS(host="127.0.0.1") as imds:
        env = {**imds_env(imds, ""), **off}
        done = saved_box.sagecode("doctor", "--jupyter-env", str(jupyter_env), env=env)
    problems = [line for line in done.stdout.splitlines() if line.startswith("problem  ")]
    assert len(problems) == 1, done.stdout
    assert problems[0].startswith(
        "problem  instance credentials: the host reaches the role nb-role, a container"
    )
    assert "warning  AWS identity: not checked: SAGECODE_CREDENTIALS=off" in done.stdout
    assert done.returncode == 1


def test_shell_enters_running_editor_else_a_throwaway(sandbox: Sandbox) -> None:
    """shell execs into the running editor (same hostname); with none running, a removed container."""
    alone = sandbox.sagecode("shell", "sh", "-c", 'echo "$HOME"; pwd; hostname')
    assert alone.returncode == 0, alone.stderr
    home, cwd, _ = alone.stdout.split()
    assert (home, cwd) == (str(sandbox.state / "home"), str(sandbox.workspace))
    assert sandbox.container_ids() == []  # the throwaway removed itself
    sandbox.launch_tcp().wait_ready()
    inside = sandbox.sagecode("shell", "hostname")
    editor = sandbox.docker("inspect", "-f", "{{.Config.Hostname}}", sandbox.name).stdout.strip()
    assert inside.stdout.strip() == editor


def test_logs_show_wrapper_and_editor_output(sandbox: Sandbox) -> None:
    """logs prints the wrapper's decisions and code-server's own output from the volume."""
    launch = sandbox.launch_tcp()
    launch.wait_ready()
    launch.stop()
    out = sandbox.sagecode("logs", "-n", "200").stdout
    assert f"==> {sandbox.state / 'logs' / 'wrapper.log'} <==" in out
    assert f"==> {sandbox.state / 'logs' / 'editor.log'} <==" in out
    assert "stopping the editor container" in out
    assert "HTTP server listening on" in out
