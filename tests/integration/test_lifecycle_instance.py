"""A simulated notebook instance: the lifecycle hooks for real, then a stop/start.

A temporary root laid out like an instance: ``home/ec2-user/SageMaker`` is the volume,
``anaconda3`` (JupyterSystemEnv with JupyterLab and jupyter-server-proxy) the platform's.
The hooks run as root with SageMaker's PATH, both at once, and work as the real user
ec2-user (in the docker group for this module only); JupyterLab runs as ec2-user and the
editor is reached through its proxy, the real wrapper and the real image. The stop/start
wipes the engine (``simulate_restart``: CI=true or SAGECODE_TEST_WIPE=1 only) and all
outside the volume, runs the start hook, starts Jupyter once and times the way back."""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from bench.proxy import jupyter_argv
from tests.integration.conftest import BASE_IMAGE, CA_BUNDLE, IN_CI, ROOT, need
from tests.integration.jupyter.conftest import (
    JUPYTER_PACKAGES,
    Jupyter,
    free_port,
    stop_jupyter,
    wait_until_up,
)
from tests.integration.test_spine import simulate_restart

pytestmark = [pytest.mark.engine, pytest.mark.image, pytest.mark.jupyter]
USER = "ec2-user"
SYSTEM_PYTHON = Path("/usr/bin/python3")  # one ec2-user may run (pyenv's lives under /root)
CONTAINER = "sagecode-lifecycle-test"  # not the default name: the engine is shared
HOOK_LIMIT = 300.0  # SageMaker stops an instance whose hook runs longer
SETUP_TIMEOUT = 1800.0
EDITOR_TIMEOUT = 400.0  # above the glue's proxy timeout (330 s)


@dataclass(frozen=True)
class Instance:
    """The simulated instance's paths and its user."""

    root: Path
    user: pwd.struct_passwd

    @property
    def home(self) -> Path:
        """``/home/ec2-user``."""
        return self.root / "home" / USER

    @property
    def volume(self) -> Path:
        """``~/SageMaker``, the only folder that survives a stop/start."""
        return self.home / "SageMaker"

    @property
    def state(self) -> Path:
        """sagecode's state on the volume."""
        return self.volume / ".sagecode"

    @property
    def jupyter_env(self) -> Path:
        """The platform's JupyterSystemEnv."""
        return self.home / "anaconda3/envs/JupyterSystemEnv"

    def hook_env(self) -> dict[str, str]:
        """A hook's environment: SageMaker's PATH, the instance's paths, builds that work here."""
        env = {"PATH": "/sbin:/bin:/usr/sbin:/usr/bin", "HOME": "/root", "LANG": "C.UTF-8",
               "SAGECODE_USER": USER, "SAGECODE_HOME": str(self.home),
               "SAGECODE_BASE_IMAGE": BASE_IMAGE, "SAGECODE_CODE_SERVER_SOURCE": "npm"}  # fmt: skip
        if Path(CA_BUNDLE).is_file():
            env["SAGECODE_CA_BUNDLE"] = CA_BUNDLE
        return env


def run_hook(instance: Instance, name: str) -> subprocess.Popen[str]:
    """Start a hook as SageMaker does: bash, as root."""
    script = ROOT / "lifecycle" / f"on-{name}.sh"
    return subprocess.Popen(["bash", str(script)], env=instance.hook_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip


def finish(hooks: dict[str, subprocess.Popen[str]]) -> dict[str, tuple[str, float]]:
    """Each hook's output and when it returned (their output is a few lines: no pipe fills up)."""
    ended: dict[str, float] = {}
    deadline = time.monotonic() + HOOK_LIMIT
    while len(ended) < len(hooks) and time.monotonic() < deadline:
        done = [name for name, hook in hooks.items() if name not in ended and hook.poll() is not None]
        ended.update(dict.fromkeys(done, time.monotonic()))
        time.sleep(0.1)
    outputs = {name: hook.communicate(timeout=1)[0] for name, hook in hooks.items()}
    for name, hook in hooks.items():
        assert hook.returncode == 0, outputs[name]
    return {name: (outputs[name], ended[name]) for name in hooks}


@pytest.fixture(scope="module")
def jupyter_system_env() -> Path:
    """A venv like JupyterSystemEnv (JupyterLab + jupyter-server-proxy) on a python ec2-user may run."""
    need(SYSTEM_PYTHON.is_file(), f"{SYSTEM_PYTHON} is missing")
    version = subprocess.run([str(SYSTEM_PYTHON), "-V"], capture_output=True, text=True, check=False).stdout
    key = hashlib.sha256(repr((JUPYTER_PACKAGES, version)).encode()).hexdigest()[:12]
    venv = Path(tempfile.gettempdir(), f"sagecode-test-jupytersystemenv-{key}")
    if not (venv / ".complete").is_file():
        shutil.rmtree(venv, ignore_errors=True)
        pip = [str(venv / "bin/python"), "-m", "pip", "install", "-q", *JUPYTER_PACKAGES]
        for step in ([str(SYSTEM_PYTHON), "-m", "venv", str(venv)], pip):
            done = subprocess.run(step, capture_output=True, text=True, check=False)
            need(done.returncode == 0, f"cannot make a JupyterSystemEnv: {done.stderr.strip()[-500:]}")
        (venv / ".complete").touch()
    return venv


@pytest.fixture(scope="module")
def engine_for_user() -> Iterator[pwd.struct_passwd]:
    """ec2-user, in the docker group while this module runs (taken out again if it was not)."""
    need(os.getuid() == 0, "the hooks run as root")
    need(USER in {p.pw_name for p in pwd.getpwall()}, f"no user {USER} (docker-engine.sh makes one)")
    user = pwd.getpwnam(USER)
    added = USER not in grp.getgrnam("docker").gr_mem
    if added:
        subprocess.run(["gpasswd", "-a", USER, "docker"], check=True, capture_output=True)
    yield user
    if added:
        subprocess.run(["gpasswd", "-d", USER, "docker"], check=True, capture_output=True)


def boot_platform(instance: Instance, jupyter_env: Path) -> None:
    """What the platform makes afresh at every start: conda's python, JupyterSystemEnv, rc files."""
    conda = instance.home / "anaconda3"
    (conda / "bin").mkdir(parents=True)
    (conda / "envs").mkdir()
    (conda / "bin/python3").symlink_to(SYSTEM_PYTHON)
    subprocess.run(["cp", "-a", str(jupyter_env), str(instance.jupyter_env)], check=True)
    for name in (".bashrc", ".profile"):
        if Path("/etc/skel", name).is_file():
            shutil.copy(Path("/etc/skel", name), instance.home / name)
    subprocess.run(["chown", "-R", f"{USER}:{USER}", str(conda), *map(str, instance.home.glob(".*"))],
                   check=True)  # fmt: skip


def wipe_platform(instance: Instance) -> None:
    """A stop: everything in the home but the volume is gone."""
    for path in instance.home.iterdir():
        if path != instance.volume:
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


@pytest.fixture(scope="module")
def instance(
    docker_engine: None, engine_for_user: pwd.struct_passwd, jupyter_system_env: Path
) -> Iterator[Instance]:
    """A fresh instance, its volume holding a checkout of sagecode (the default install source)."""
    root = Path(tempfile.mkdtemp(prefix="sagecode-instance-"))
    root.chmod(0o755)
    made = Instance(root, engine_for_user)
    made.volume.mkdir(parents=True)
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()  # fmt: skip
    for name in files:
        if (ROOT / name).is_file():
            (made.volume / "sagecode" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, made.volume / "sagecode" / name)
    subprocess.run(["chown", "-R", f"{USER}:{USER}", str(root / "home")], check=True)
    boot_platform(made, jupyter_system_env)
    yield made
    subprocess.run(["docker", "rm", "-f", CONTAINER], capture_output=True, check=False)
    shutil.rmtree(root, ignore_errors=True)


def setup_outcome(instance: Instance) -> str:
    """The setup phase once the background job has ended."""
    state_file, deadline = instance.state / "run/setup-state", time.monotonic() + SETUP_TIMEOUT
    while time.monotonic() < deadline:
        text = state_file.read_text() if state_file.exists() else ""
        if text.startswith(("ready", "failed")):
            return text.strip()
        time.sleep(1)
    return "timed out"


def start_jupyter_as_user(instance: Instance) -> Jupyter:
    """JupyterLab from JupyterSystemEnv as ec2-user, as the platform starts it after the hooks."""
    user, token, port = instance.user, uuid.uuid4().hex, free_port()
    argv = [str(instance.jupyter_env / "bin/python"), "-m", "jupyterlab",
            *jupyter_argv(instance.jupyter_env, port, token, instance.volume)[1:]]  # fmt: skip
    env = {"HOME": str(instance.home), "USER": USER, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
           "SAGECODE_CONTAINER": CONTAINER}  # fmt: skip
    log = instance.root / f"jupyter-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, env=env, cwd=instance.volume, stdout=out, stderr=subprocess.STDOUT,
            user=user.pw_uid, group=user.pw_gid, extra_groups=os.getgrouplist(USER, user.pw_gid),
        )  # fmt: skip
    server = Jupyter(f"http://127.0.0.1:{port}/", token, process, log)
    wait_until_up(server)
    return server


def through_proxy(server: Jupyter, path: str) -> requests.Response:
    """GET ``<base>/codeserver/<path>``: the first one starts the editor, so it may take minutes.

    While the wrapper restores the image, the address answers 503 with a page that waits
    (``runtime/waitpage.py``); once that page was seen, this asks again through any 5xx (the
    proxy's own, in the moment between the page and the editor), as the page does.
    """
    headers = {"Authorization": f"token {server.token}"}
    deadline = time.monotonic() + EDITOR_TIMEOUT
    waited = False
    while True:
        answer = requests.get(f"{server.url}codeserver/{path}", headers=headers, timeout=EDITOR_TIMEOUT)
        waited = waited or (answer.status_code == 503 and "its image is being restored" in answer.text)
        if answer.status_code < 500 or not waited or time.monotonic() > deadline:
            return answer
        time.sleep(0.5)


def card_names(server: Jupyter) -> list[str]:
    """The servers the launcher shows cards for."""
    return [s["name"] for s in server.get("server-proxy/servers-info").json()["server_processes"]]


@pytest.fixture(scope="module")
def booted(instance: Instance) -> dict[str, float]:
    """Both hooks at once, as on a first boot; returns how long each took to return."""
    started = time.monotonic()
    returned = finish({name: run_hook(instance, name) for name in ("create", "start")})
    outcome = setup_outcome(instance)
    log = (instance.state / "logs/lifecycle.log").read_text(errors="replace")
    assert outcome == "ready", f"{outcome}\n{log[-6000:]}"
    times = {name: at - started for name, (_, at) in returned.items()}
    print(f"\nfirst boot: hooks returned after {times}; ready after {time.monotonic() - started:.0f} s")
    return times


def test_first_boot_hooks_return_in_time_and_build_once(instance: Instance, booted: dict[str, float]) -> None:
    """Both hooks return within SageMaker's limit, as root, having worked as ec2-user; one build."""
    assert max(booted.values()) < HOOK_LIMIT
    log = (instance.state / "logs/lifecycle.log").read_text()
    builds = [line for line in log.splitlines() if "running " in line and " build --state-dir " in line]
    assert len(builds) == 1, log
    made = (instance.state / "venv", instance.state / "images/current.json", instance.state / "home")
    assert {path.stat().st_uid for path in made} == {instance.user.pw_uid}
    assert "# >>> sagecode >>>" in (instance.home / ".bashrc").read_text()


def test_first_boot_editor_answers_through_the_proxy(instance: Instance, booted: dict[str, float]) -> None:
    """The card is listed and <base>/codeserver/ reaches code-server in the real image."""
    server = start_jupyter_as_user(instance)
    try:
        assert card_names(server) == ["codeserver"]
        health = through_proxy(server, "healthz")
        assert health.status_code == 200, server.log_tail()
        assert health.json()["status"] in ("alive", "expired")
        page = through_proxy(server, "")
        assert page.status_code == 200
        assert "workbench" in page.text.lower()
    finally:
        stop_jupyter(server)


@pytest.mark.wipe
def test_restart_gets_the_editor_back_with_the_users_things(
    instance: Instance, booted: dict[str, float], jupyter_system_env: Path
) -> None:
    """After a stop/start the start hook alone brings back the card and the editor, data intact."""
    need(IN_CI or os.environ.get("SAGECODE_TEST_WIPE") == "1", "simulate_restart() would skip: see its gate")
    marker = uuid.uuid4().hex
    user_data = instance.state / "home/.local/share/code-server"
    mine = {instance.volume / "notes.txt": f"my notes {marker}\n",
            user_data / "User/settings.json": f'{{"sagecode.test.marker": "{marker}"}}\n',
            user_data / "extensions/sagecode-test.marker": marker}  # fmt: skip
    for path, text in mine.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        shutil.chown(path, USER, USER)
    simulate_restart()
    wipe_platform(instance)
    boot_platform(instance, jupyter_system_env)
    started = time.monotonic()
    out, hook_done = finish({"start": run_hook(instance, "start")})["start"]
    server = start_jupyter_as_user(instance)
    try:
        jupyter_up = time.monotonic()
        assert "launcher card registered in" in out  # into the new JupyterSystemEnv, before Jupyter
        assert card_names(server) == ["codeserver"], out
        health = through_proxy(server, "healthz")
        ready = time.monotonic()
        assert health.status_code == 200, server.log_tail()
        for path, text in mine.items():  # as the editor sees them
            argv = ["docker", "exec", CONTAINER, "cat", str(path)]
            assert subprocess.run(argv, capture_output=True, text=True, check=False).stdout == text
    finally:
        stop_jupyter(server)
    waited = "restoring it" in (instance.state / "logs/wrapper.log").read_text()
    print(f"\nrestart to ready: {ready - started:.1f} s (start hook {hook_done - started:.1f} s, "
          f"Jupyter up at {jupyter_up - started:.1f} s, editor answering at {ready - started:.1f} s; "
          f"the click {'waited for' if waited else 'did not wait for'} the restore)")
    assert setup_outcome(instance) == "ready"
    assert "# >>> sagecode >>>" in (instance.home / ".bashrc").read_text()

