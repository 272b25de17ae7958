"""The Jupyter glue: the server dict, its settings, the missing-wrapper placeholder, and its setup."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from imagebuild.errors import UsageError
from runtime import config as runtime_config
from runtime import jupyter_setup

ROOT = Path(__file__).resolve().parents[2]
# sagecode_jupyter is its own distribution (jupyter/pyproject.toml) for the Jupyter
# server's environment, not part of the project venv: import it from the source tree.
sys.path.insert(0, str(ROOT / "jupyter"))
import sagecode_jupyter.server as server  # noqa: E402
import sagecode_jupyter.settings as settings  # noqa: E402

WRAPPER = Path("/state/venv/bin/code-server")
WORKSPACE = Path("/home/u/SageMaker")
SETTINGS = settings.Settings(WRAPPER, "SAGECODE_WRAPPER", 330.0, WORKSPACE)
ENTRY = {"enabled": True, "title": "Code Server", "icon_path": str(server.ICON), "category": "Notebook"}
COMMON = {"timeout": 330.0, "absolute_url": False, "new_browser_tab": False, "launcher_entry": ENTRY}


def test_server_config_socket_mode() -> None:
    """Socket mode: the wrapper listens on the proxy's unix socket, without auth, on the workspace."""
    config = server.server_config(SETTINGS, unix_socket=True, wrapper_found=True, python="/py")
    assert config == {
        **COMMON,
        "command": [str(WRAPPER), "--socket", "{unix_socket}", "--auth", "none", str(WORKSPACE)],
        "environment": {"SAGECODE_WORKSPACE": str(WORKSPACE)},
        "unix_socket": True,
    }


def test_server_config_tcp_mode() -> None:
    """TCP mode: the wrapper listens on loopback at the proxy's port; no unix socket is asked for."""
    config = server.server_config(SETTINGS, unix_socket=False, wrapper_found=True, python="/py")
    assert config == {
        **COMMON,
        "command": [str(WRAPPER), "--bind-addr", "127.0.0.1:{port}", "--auth", "none", str(WORKSPACE)],
        "environment": {"SAGECODE_WORKSPACE": str(WORKSPACE)},
    }


def test_missing_wrapper_command_runs_the_placeholder() -> None:
    """A missing wrapper: the command runs the placeholder, which knows the wrapper, its origin and args."""
    command = server.command(SETTINGS, unix_socket=True, wrapper_found=False, python="/py")
    assert command == [
        "/py", "-I", str(server.PLACEHOLDER), "--wrapper", str(WRAPPER), "--origin", "SAGECODE_WRAPPER",
        "--", "--socket", "{unix_socket}", "--auth", "none", str(WORKSPACE),
    ]  # fmt: skip


def test_command_survives_the_proxys_template_rendering() -> None:
    """Braces in paths reach the wrapper unchanged after the proxy's ``str.format``."""
    odd = settings.Settings(Path("/w/{x}/code-server"), "the default", 1.0, Path("/ws/{y}"))
    command = server.command(odd, unix_socket=True, wrapper_found=True, python="/py")
    rendered = [arg.format(unix_socket="/s", port=1, base_url="/") for arg in command]
    assert rendered == ["/w/{x}/code-server", "--socket", "/s", "--auth", "none", "/ws/{y}"]


def test_setup_codeserver_reads_settings_when_called(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The entry point looks the wrapper up when called (not at import) and gives the same dict each time."""
    first, second = executable(tmp_path / "a"), executable(tmp_path / "b")
    monkeypatch.setenv("SAGECODE_WRAPPER", str(first))
    assert server.setup_codeserver()["command"][0] == str(first)
    assert server.setup_codeserver() == server.setup_codeserver()
    monkeypatch.setenv("SAGECODE_WRAPPER", str(second))
    assert server.setup_codeserver()["command"][0] == str(second)


@pytest.mark.parametrize(
    ("tornado", "proxy", "mode", "socket_mode"),
    [
        ((6, 3), (4, 2), "auto", True),
        ((6, 2), (4, 2), "auto", False),
        ((6, 5), (3, 2), "auto", False),
        ((6, 5), (4, 6), "tcp", False),
        ((6, 2), (4, 6), "socket", True),
    ],
)
def test_setup_codeserver_mode_follows_versions_unless_forced(
    monkeypatch: pytest.MonkeyPatch,
    tornado: tuple[int, int],
    proxy: tuple[int, int],
    mode: str,
    socket_mode: bool,
) -> None:
    """Auto mode uses a socket only with Tornado >= 6.3 and jupyter-server-proxy >= 4; a forced mode wins."""
    versions = {"tornado": tornado, "jupyter-server-proxy": proxy}
    monkeypatch.setattr(server, "version_of", versions.__getitem__)
    monkeypatch.setenv("SAGECODE_JUPYTER_MODE", mode)
    config = server.setup_codeserver()
    assert ("--socket" in config["command"], config.get("unix_socket", False)) == (socket_mode, socket_mode)


def test_wrapper_lookup_order(tmp_path: Path) -> None:
    """The wrapper comes from SAGECODE_WRAPPER, else the config file, else the default under ~/SageMaker."""
    config = write_json(tmp_path / "jupyter.json", {"wrapper": "/from/config"})
    env = {"SAGECODE_WRAPPER": "/from/env"}
    assert lookup(env, config, tmp_path) == (Path("/from/env"), "SAGECODE_WRAPPER")
    assert lookup({}, config, tmp_path) == (Path("/from/config"), str(config))
    default = tmp_path / "SageMaker/.sagecode/venv/bin/code-server"
    assert lookup({}, tmp_path / "absent.json", tmp_path) == (default, "the default")


def test_broken_config_is_ignored_with_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config file that is not a JSON object leaves the defaults and says so on stderr."""
    broken = tmp_path / "jupyter.json"
    broken.write_text("[1, 2")
    assert lookup({}, broken, tmp_path)[1] == "the default"
    assert capsys.readouterr().err.count(f"sagecode: ignoring {broken}") == 1


def test_timeout_sources_and_bad_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The timeout comes from the environment, else the config, else 330 s; a bad value warns, is ignored."""
    config = write_json(tmp_path / "jupyter.json", {"timeout": 60})
    assert load({}, tmp_path / "absent.json", tmp_path).timeout == settings.DEFAULT_TIMEOUT
    assert load({}, config, tmp_path).timeout == 60.0
    assert load({"SAGECODE_JUPYTER_TIMEOUT": "90"}, config, tmp_path).timeout == 90.0
    assert load({"SAGECODE_JUPYTER_TIMEOUT": "-1"}, config, tmp_path).timeout == settings.DEFAULT_TIMEOUT
    assert "not a positive number" in capsys.readouterr().err


def test_default_timeout_outlasts_the_wrappers_image_wait() -> None:
    """The proxy waits longer than the wrapper waits for an image restore, so the wrapper explains first."""
    assert settings.DEFAULT_TIMEOUT > runtime_config.DEFAULT_IMAGE_WAIT


def test_workspace_defaults_like_the_wrapper(tmp_path: Path) -> None:
    """The folder opened is SAGECODE_WORKSPACE, else ~/SageMaker when it exists, else home."""
    absent = tmp_path / "absent.json"
    assert load({}, absent, tmp_path).workspace == tmp_path
    (tmp_path / "SageMaker").mkdir()
    assert load({}, absent, tmp_path).workspace == tmp_path / "SageMaker"
    assert load({"SAGECODE_WORKSPACE": "/ws"}, absent, tmp_path).workspace == Path("/ws")


def test_setup_and_glue_agree_on_the_config_path() -> None:
    """The setup command writes the settings file where the glue reads it."""
    assert jupyter_setup.CONFIG_RELPATH == settings.CONFIG_RELPATH


def test_placeholder_explains_over_tcp_and_logs_once(tmp_path: Path) -> None:
    """The placeholder answers 503 naming the missing path at once, and logs one line however often asked."""
    port = free_port()
    wrapper = tmp_path / "code-server"
    with run_placeholder(wrapper, "--bind-addr", f"127.0.0.1:{port}") as process:
        answers = [until_up(lambda: tcp_get(port)) for _ in range(3)]
        process.terminate()
        log = process.communicate(timeout=10)[1]
    assert {status for status, _ in answers} == {503}
    assert f"{wrapper} does not exist (path from SAGECODE_WRAPPER)" in answers[0][1]
    assert log.count("sagecode: the code-server wrapper") == 1


def test_placeholder_becomes_the_wrapper_once_installed(tmp_path: Path) -> None:
    """Once the wrapper exists, the next request gets the starting page and the wrapper runs in its place."""
    sock, wrapper, seen = tmp_path / "socket", tmp_path / "code-server", tmp_path / "seen"
    sock.write_text("left by an earlier run")
    with run_placeholder(wrapper, "--socket", str(sock), "--auth", "none") as process:
        status, _ = until_up(lambda: unix_get(sock))
        # Records its pid and arguments only if the placeholder freed the socket's path.
        executable(wrapper, f'#!/bin/sh\n[ -e "$2" ] || echo "$$ $*" > {seen}\n')
        status_after, page = unix_get(sock)
        assert process.wait(timeout=10) == 0
    assert (status, status_after) == (503, 503)
    assert "starting" in page
    assert seen.read_text() == f"{process.pid} --socket {sock} --auth none\n"


def test_build_wheel_is_cached_by_content(wheel_cache: Path, tmp_path: Path) -> None:
    """The wheel is built once per content of jupyter/; a new build happens only when that changes."""
    wheel = jupyter_setup.build_wheel(jupyter_setup.SOURCE, wheel_cache)
    assert jupyter_setup.build_wheel(jupyter_setup.SOURCE, wheel_cache) == wheel
    assert wheel.parent.name == jupyter_setup.source_digest(jupyter_setup.SOURCE)[:12]


def test_install_twice_changes_nothing(env: Path, wheel_cache: Path) -> None:
    """Installing into a throwaway venv twice: the second run reports and changes nothing."""
    first = jupyter_setup.install(env, WRAPPER, timeout=99.0, cache_dir=wheel_cache)
    after_first = snapshot(env)
    second = jupyter_setup.install(env, WRAPPER, timeout=99.0, cache_dir=wheel_cache)
    assert (first.changed, second.changed) == (True, False)
    assert snapshot(env) == after_first
    assert json.loads((env / settings.CONFIG_RELPATH).read_text()) == {
        "wrapper": str(WRAPPER),
        "timeout": 99.0,
    }


def test_installed_glue_is_found_by_the_proxy(env: Path, wheel_cache: Path) -> None:
    """After install, the env's entry point group yields the server dict, reading the written config."""
    jupyter_setup.install(env, WRAPPER, workspace=WORKSPACE, mode="tcp", cache_dir=wheel_cache)
    probe = (
        "import importlib.metadata as m, json; "
        "(ep,) = m.entry_points(group='jupyter_serverproxy_servers', name='codeserver'); "
        "print(json.dumps(ep.load()()))"
    )
    config = json.loads(run([str(env / "bin/python"), "-I", "-c", probe]))
    assert Path(config["launcher_entry"]["icon_path"]).read_text().lstrip().startswith("<svg")
    assert Path(config["command"][2]).name == "placeholder.py"
    assert config["command"][-5:] == ["--bind-addr", "127.0.0.1:{port}", "--auth", "none", str(WORKSPACE)]


def test_uninstall_restores_the_env(env: Path, wheel_cache: Path) -> None:
    """Uninstall removes the package and the config and nothing else; a second uninstall changes nothing."""
    before = snapshot(env, skip_pycache=True)
    jupyter_setup.install(env, WRAPPER, cache_dir=wheel_cache)
    assert jupyter_setup.uninstall(env).changed
    assert snapshot(env, skip_pycache=True) == before
    assert not jupyter_setup.uninstall(env).changed


def test_env_without_python_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A prefix with no bin/python is refused with what to pass instead, by the API and the command line."""
    with pytest.raises(UsageError, match="has no bin/python"):
        jupyter_setup.install(tmp_path, WRAPPER)
    assert jupyter_setup.main(["uninstall", "--env", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {tmp_path} has no bin/python (pass the Jupyter server's environment, "
        f"e.g. --env {jupyter_setup.DEFAULT_ENV})"
    ]


def test_restart_only_through_systemd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Restart says so when there is no systemd unit, and runs systemctl restart when there is."""
    monkeypatch.setenv("PATH", str(tmp_path))
    assert jupyter_setup.restart().startswith("not restarted: no systemd unit jupyter-server")
    calls = tmp_path / "calls"
    executable(tmp_path / "systemctl", f'#!/bin/sh\necho "systemctl $*" >> {calls}\n')
    executable(tmp_path / "sudo", f'#!/bin/sh\necho "sudo $*" >> {calls}\nexec "$@"\n')
    assert jupyter_setup.restart() == "restarted jupyter-server"
    sudo = [] if os.geteuid() == 0 else [f"sudo -n {tmp_path}/systemctl restart jupyter-server"]
    expected = ["systemctl cat jupyter-server", *sudo, "systemctl restart jupyter-server"]
    assert calls.read_text().splitlines() == expected


@pytest.fixture(scope="module")
def wheel_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel cache shared by this module's tests, so the glue is built once."""
    return tmp_path_factory.mktemp("wheels")


@pytest.fixture(scope="module")
def pristine_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty venv standing in for JupyterSystemEnv, made once per module."""
    venv = tmp_path_factory.mktemp("pristine") / "env"
    run([sys.executable, "-m", "venv", str(venv)])
    return venv


@pytest.fixture
def env(pristine_env: Path, tmp_path: Path) -> Path:
    """A fresh copy of the empty venv for one test (a venv found through bin/python moves fine)."""
    copy = tmp_path / "env"
    shutil.copytree(pristine_env, copy, symlinks=True)
    return copy


def executable(path: Path, text: str = "#!/bin/sh\n") -> Path:
    """A runnable file at ``path``."""
    path.write_text(text)
    path.chmod(0o755)
    return path


def write_json(path: Path, data: object) -> Path:
    """``data`` as a JSON file at ``path``."""
    path.write_text(json.dumps(data))
    return path


def load(env: dict[str, str], config: Path, home: Path) -> settings.Settings:
    """The glue's settings for these inputs."""
    return settings.load_settings(env, config, home)


def lookup(env: dict[str, str], config: Path, home: Path) -> tuple[Path, str]:
    """The wrapper's path and where it came from."""
    found = load(env, config, home)
    return found.wrapper, found.wrapper_origin


def run(argv: list[str]) -> str:
    """Run ``argv``, failing the test with its stderr when it fails."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def snapshot(root: Path, skip_pycache: bool = False) -> dict[str, str]:
    """Every file under ``root`` with its sha256 (symlinks by target)."""
    files = {}
    for path in sorted(root.rglob("*")):
        if skip_pycache and "__pycache__" in path.parts:
            continue
        if path.is_symlink():
            files[str(path.relative_to(root))] = str(path.readlink())
        elif path.is_file():
            files[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def run_placeholder(wrapper: Path, *wrapper_args: str) -> subprocess.Popen[str]:
    """The placeholder as the proxy starts it."""
    argv = [sys.executable, "-I", str(server.PLACEHOLDER), "--wrapper", str(wrapper)]
    argv += ["--origin", "SAGECODE_WRAPPER", "--", *wrapper_args]
    return subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)


def until_up(get: Callable[[], tuple[int, str]]) -> tuple[int, str]:
    """``get()``, retried while the server is not listening yet."""
    for _ in range(50):
        try:
            return get()
        except OSError:
            time.sleep(0.1)
    return get()


def tcp_get(port: int) -> tuple[int, str]:
    """GET / on 127.0.0.1:``port``."""
    return fetch(http.client.HTTPConnection("127.0.0.1", port, timeout=5))


def unix_get(path: Path) -> tuple[int, str]:
    """GET / on the unix socket at ``path``."""
    connection = http.client.HTTPConnection("localhost", timeout=5)
    connection.sock = socket.socket(socket.AF_UNIX)
    connection.sock.connect(str(path))
    return fetch(connection)


def fetch(connection: http.client.HTTPConnection) -> tuple[int, str]:
    """Status and body of GET / on ``connection``."""
    connection.request("GET", "/")
    answer = connection.getresponse()
    return answer.status, answer.read().decode()


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
