"""The lifecycle hooks (lifecycle/on-*.sh): size, portability, --dry-run, locking, idempotence.

The hooks run for real here with stand-ins for the interpreter, pip and the image build
(small scripts that record their calls), as the current user, so no network and no
engine are needed; tests/integration/test_lifecycle_instance.py runs them as root for ec2-user.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOOKS = {name: ROOT / "lifecycle" / f"on-{name}.sh" for name in ("create", "start")}
CONSOLE_LIMIT = 16384  # SageMaker refuses a lifecycle script longer than this
ME = pwd.getpwuid(os.getuid()).pw_name
# Constructs newer than bash 4.2 (Amazon Linux 2): case changes, namerefs, mapfile -d,
# wait -n, ${x@Q}, negative subscripts, EPOCHSECONDS, inherit_errexit.
NEWER_BASH = re.compile(
    r"\$\{\w+(,,|\^\^|,|\^)\}|declare -n|local -n|mapfile -d|readarray -d|wait -n|@Q\}|\[-1\]"
    r"|EPOCHSECONDS|EPOCHREALTIME|inherit_errexit|BASH_ARGV0"
)

BASE_PYTHON = f"""#!/bin/bash
# A stand-in interpreter: "-m venv DIR" makes a venv of stand-ins; anything else is real.
if [ "$1 $2" = "-m venv" ]; then
  echo "venv" >>"$FAKE_RECORD"; sleep 0.5
  mkdir -p "$3/bin" && cp "$FAKE_DIR/venv-python" "$3/bin/python" && cp "$FAKE_DIR/pip" "$3/bin/pip"
  exit
fi
exec {sys.executable} "$@"
"""
VENV_PYTHON = f'#!/bin/bash\nexec {sys.executable} "$@"\n'
PIP = """#!/bin/bash
echo "pip $1" >>"$FAKE_RECORD"
[ -z "${FAKE_PIP_FAIL:-}" ] || exit 1
if [ "$1" = wheel ]; then mkdir -p "$4" && touch "$4/sagecode-0.1.0-py3-none-any.whl"; fi
"""
IMAGEBUILD = """#!/bin/bash
echo "imagebuild $1" >>"$FAKE_RECORD"
sleep 1
[ -z "${FAKE_BUILD_FAIL:-}" ] || exit 1
if [ "$1" = build ]; then mkdir -p "$3/images" && echo '{}' >"$3/images/current.json"; fi
"""


@pytest.fixture
def fakes(tmp_path: Path) -> Path:
    """The stand-in scripts, in one folder."""
    folder = tmp_path / "fakes"
    folder.mkdir()
    for name, text in (("python", BASE_PYTHON), ("venv-python", VENV_PYTHON), ("pip", PIP),
                       ("imagebuild", IMAGEBUILD)):  # fmt: skip
        (folder / name).write_text(text)
        (folder / name).chmod(0o755)
    return folder


def hook_env(tmp_path: Path, fakes: Path, **extra: str) -> dict[str, str]:
    """The environment a hook gets: the stand-ins, a home with a sagecode checkout, no Jupyter env."""
    (tmp_path / "home/SageMaker/sagecode").mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGECODE_")}
    env.update(
        SAGECODE_USER=ME, SAGECODE_HOME=str(tmp_path / "home"), SAGECODE_PYTHON=str(fakes / "python"),
        SAGECODE_JUPYTER_ENV=str(tmp_path / "no-jupyter"), SAGECODE_IMAGEBUILD=str(fakes / "imagebuild"),
        SAGECODE_ENGINE_WAIT="0", FAKE_DIR=str(fakes), FAKE_RECORD=str(tmp_path / "record"),
    )  # fmt: skip
    return {**env, **extra}


def run_hook(name: str, env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run a hook with bash, as SageMaker does."""
    return subprocess.run(
        ["bash", str(HOOKS[name]), *args], env=dict(env), capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip


def wait_for_setup(state: Path, seconds: float = 30) -> str:
    """The setup phase once the background job has ended (ready or failed)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        phase = (state / "run/setup-state").read_text() if (state / "run/setup-state").exists() else ""
        if phase.startswith(("ready", "failed")):
            return phase
        time.sleep(0.1)
    raise AssertionError(f"the setup did not end; log:\n{(state / 'logs/lifecycle.log').read_text()}")


def records(tmp_path: Path) -> list[str]:
    """The stand-ins' calls, in order."""
    path = tmp_path / "record"
    return path.read_text().splitlines() if path.exists() else []


def plus(*words: str) -> str:
    """A --dry-run line."""
    return "+ " + " ".join(words)


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_hook_fits_the_console(name: str) -> None:
    """Each hook is far below SageMaker's 16,384-character limit for a lifecycle script."""
    size = len(HOOKS[name].read_text())
    assert size < CONSOLE_LIMIT
    assert size < 4096, f"on-{name}.sh has grown to {size} characters: move logic into Python"


def test_hooks_differ_only_in_their_name() -> None:
    """on-create.sh and on-start.sh are the same script but for the HOOK line."""
    create, start = (HOOKS[name].read_text().splitlines() for name in ("create", "start"))
    differ = [(a, b) for a, b in zip(create, start) if a != b]
    assert len(create) == len(start)
    assert differ == [("HOOK=create", "HOOK=start")]


def test_hooks_are_shellcheck_clean() -> None:
    """shellcheck at its strictest severity finds nothing in the hooks."""
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    argv = ["shellcheck", "-S", "style", *map(str, HOOKS.values())]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_hook_uses_nothing_newer_than_bash_4_2(name: str) -> None:
    """No construct that Amazon Linux 2's bash 4.2 lacks, and it parses with bash -n."""
    text = HOOKS[name].read_text()
    assert NEWER_BASH.findall(text) == []
    assert text.startswith("#!/bin/bash\n")
    assert subprocess.run(["bash", "-n", str(HOOKS[name])], capture_output=True, check=False).returncode == 0


def test_dry_run_on_first_boot_prints_the_install(tmp_path: Path, fakes: Path) -> None:
    """--dry-run on a fresh volume prints every install command and the hand-over, exactly."""
    env = hook_env(tmp_path, fakes)
    home, python = env["SAGECODE_HOME"], env["SAGECODE_PYTHON"]
    state = f"{home}/SageMaker/.sagecode"
    venv, as_me = f"{state}/venv", ("env", f"HOME={home}")
    done = run_hook("create", env, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        plus(*as_me, "mkdir", "-p", f"{state}/logs", f"{state}/run"),
        plus(*as_me, "touch", f"{state}/logs/lifecycle.log", f"{state}/run/install.lock"),
        f"sagecode create: installing sagecode into {venv}",
        plus(*as_me, "rm", "-rf", venv),
        plus(*as_me, "timeout", "60", python, "-m", "venv", venv),
        plus(*as_me, "timeout", "150", f"{venv}/bin/pip", "wheel", "-q", "-w", f"{state}/wheelhouse",
             f"{home}/SageMaker/sagecode", f"{home}/SageMaker/sagecode/jupyter"),
        plus(*as_me, "timeout", "60", f"{venv}/bin/pip", "install", "-q", "--no-index",
             "--find-links", f"{state}/wheelhouse", "sagecode"),
        plus(*as_me, "touch", f"{venv}/.complete"),
        plus(*as_me, "timeout", "60", f"{venv}/bin/python", "-I", "-m", "runtime.lifecycle", "create"),
    ]  # fmt: skip
    assert [p.name for p in (tmp_path / "home").rglob("*")] == ["SageMaker", "sagecode"]
    assert records(tmp_path) == []


def test_dry_run_when_installed_prints_only_the_hand_over(tmp_path: Path, fakes: Path) -> None:
    """With a working venv on the volume, --dry-run prints the folders and the hand-over only."""
    env = hook_env(tmp_path, fakes)
    venv = Path(env["SAGECODE_HOME"], "SageMaker/.sagecode/venv")
    (venv / "bin").mkdir(parents=True)
    shutil.copy(fakes / "venv-python", venv / "bin/python")
    (venv / ".complete").touch()
    lines = run_hook("start", env, "--dry-run").stdout.splitlines()
    assert len(lines) == 3
    assert lines[2] == plus("env", f"HOME={env['SAGECODE_HOME']}", "timeout", "60",
                            f"{venv}/bin/python", "-I", "-m", "runtime.lifecycle", "start")  # fmt: skip


def test_dry_run_moves_the_engine_data_first_when_asked(tmp_path: Path, fakes: Path) -> None:
    """SAGECODE_ENGINE_DATA=volume: as root, before the hand-over, the engine's data goes to the volume."""
    env = hook_env(tmp_path, fakes, SAGECODE_ENGINE_DATA="volume")
    venv = Path(env["SAGECODE_HOME"], "SageMaker/.sagecode/venv")
    (venv / "bin").mkdir(parents=True)
    shutil.copy(fakes / "venv-python", venv / "bin/python")
    (venv / ".complete").touch()
    lines = run_hook("start", env, "--dry-run").stdout.splitlines()
    assert lines[2] == plus("timeout", "120", f"{venv}/bin/python", "-I", "-m", "runtime.enginedata", "on",
                            "--volume", f"{env['SAGECODE_HOME']}/SageMaker/.sagecode/engine")  # fmt: skip
    assert lines[3].endswith("runtime.lifecycle start")


def test_dry_run_builds_the_glue_from_a_url_source(tmp_path: Path, fakes: Path) -> None:
    """A pip URL source gets its glue from the URL's jupyter/ subdirectory."""
    url = "git+https://example.invalid/org/sagecode@v1"
    out = run_hook("start", hook_env(tmp_path, fakes, SAGECODE_SOURCE=url), "--dry-run").stdout
    wheel = next(line for line in out.splitlines() if " wheel " in line)
    assert wheel.endswith(f" {url} {url}#subdirectory=jupyter")


def test_dry_run_runs_the_work_as_the_configured_user(tmp_path: Path, fakes: Path) -> None:
    """Run as root, every command is run as SAGECODE_USER with its home."""
    if os.getuid() != 0 or not Path("/usr/bin/python3").exists():
        pytest.skip("needs root and /usr/bin/python3")
    user = next((p.pw_name for p in pwd.getpwall() if p.pw_uid >= 1000 and p.pw_name != "nobody"), None)
    if user is None:
        pytest.skip("no unprivileged user on this machine")
    env = hook_env(tmp_path, fakes, SAGECODE_USER=user, SAGECODE_PYTHON="/usr/bin/python3")
    lines = [line for line in run_hook("start", env, "--dry-run").stdout.splitlines() if line.startswith("+")]
    prefix = plus("runuser", "-u", user, "--", "env", f"HOME={env['SAGECODE_HOME']}", "")
    assert lines
    assert all(line.startswith(prefix) for line in lines)


def test_unknown_argument_is_a_usage_error(tmp_path: Path, fakes: Path) -> None:
    """Anything but --dry-run is refused with status 2 before anything runs."""
    done = run_hook("start", hook_env(tmp_path, fakes), "--bogus")
    assert done.returncode == 2
    assert "usage:" in done.stderr
    assert not (tmp_path / "home/SageMaker/.sagecode").exists()


def test_missing_source_says_what_to_do_and_exits_0(tmp_path: Path, fakes: Path) -> None:
    """No checkout at the default source: one line on stdout says where and what to set."""
    env = hook_env(tmp_path, fakes)
    source = tmp_path / "home/SageMaker/sagecode"
    source.rmdir()
    done = run_hook("create", env)
    assert done.returncode == 0
    assert done.stdout.splitlines()[:2] == [
        f"sagecode create: installing sagecode into {source.parent}/.sagecode/venv",
        f"sagecode create: no sagecode in {source}: clone it there or set SAGECODE_SOURCE",
    ]
    assert records(tmp_path) == ["venv"]


def test_concurrent_hooks_install_once_and_build_once(tmp_path: Path, fakes: Path) -> None:
    """Both hooks at once, as on a first boot: one venv, one wheelhouse fill, one image build."""
    env = hook_env(tmp_path, fakes)
    started = [subprocess.Popen(["bash", str(HOOKS[name])], env=env, stdout=subprocess.PIPE, text=True)
               for name in ("create", "start")]  # fmt: skip
    outputs = [process.communicate(timeout=120)[0] for process in started]
    assert [process.returncode for process in started] == [0, 0]
    state = tmp_path / "home/SageMaker/.sagecode"
    assert wait_for_setup(state) == "ready\n"
    calls = records(tmp_path)
    assert calls.count("venv") == 1
    assert calls.count("pip wheel") == 1
    assert calls.count("imagebuild build") == 1
    assert "imagebuild restore" not in calls[: calls.index("imagebuild build")]
    assert any("preparing the image in the background" in out for out in outputs)


def test_second_start_reuses_the_venv_and_changes_nothing(tmp_path: Path, fakes: Path) -> None:
    """A later start installs nothing, restores instead of building, and rewrites no file."""
    env = hook_env(tmp_path, fakes)
    state = tmp_path / "home/SageMaker/.sagecode"
    assert run_hook("create", env).returncode == 0
    wait_for_setup(state)
    bashrc = (tmp_path / "home/.bashrc").read_bytes()
    before = len(records(tmp_path))
    done = run_hook("start", env)
    assert done.returncode == 0
    assert wait_for_setup(state) == "ready\n"
    assert records(tmp_path)[before:] == ["imagebuild restore"]
    assert (tmp_path / "home/.bashrc").read_bytes() == bashrc
    assert "terminal hint already in" in done.stdout


def test_failed_install_exits_0_and_the_next_start_retries(tmp_path: Path, fakes: Path) -> None:
    """pip failing: the hook says so and exits 0 (the instance still starts); the next start installs."""
    env = hook_env(tmp_path, fakes, FAKE_PIP_FAIL="1")
    state = tmp_path / "home/SageMaker/.sagecode"
    failed = run_hook("start", env)
    assert failed.returncode == 0
    assert f"sagecode is not installed; see {state}/logs/lifecycle.log" in failed.stdout
    assert not (state / "venv/.complete").exists()
    del env["FAKE_PIP_FAIL"]
    assert run_hook("start", env).returncode == 0
    assert (state / "venv/.complete").exists()
    assert wait_for_setup(state) == "ready\n"


def test_failed_build_marks_failed_with_its_log_and_the_next_start_retries(
    tmp_path: Path, fakes: Path
) -> None:
    """A failed image build leaves 'failed <log>' for the terminal hint; the next start builds again."""
    env = hook_env(tmp_path, fakes, FAKE_BUILD_FAIL="1")
    state = tmp_path / "home/SageMaker/.sagecode"
    assert run_hook("create", env).returncode == 0
    assert wait_for_setup(state) == f"failed {state}/logs/lifecycle.log\n"
    del env["FAKE_BUILD_FAIL"]
    run_hook("start", env)
    assert wait_for_setup(state) == "ready\n"
    assert records(tmp_path).count("imagebuild build") == 2
