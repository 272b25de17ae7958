"""runtime.lifecycle and runtime.maintenance: the hooks' Python side, update and uninstall."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imagebuild.errors import SagecodeError, UsageError
from imagebuild.paths import StatePaths
from runtime import lifecycle, maintenance
from runtime.hint import install_host_hint
from runtime.rcblock import START, remove_block, replace_block

IMAGEBUILD = """#!/bin/bash
echo "$*" >>"$FAKE_RECORD"
sleep "${FAKE_SLEEP:-0}"
[ -z "${FAKE_BUILD_FAIL:-}" ] || exit 3
if [ "$1" = build ]; then mkdir -p "$3/images" && echo '{}' >"$3/images/current.json"; fi
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A notebook user's environment: a home with SageMaker/, a recording image build, no engine wait."""
    (tmp_path / "home/SageMaker").mkdir(parents=True)
    fake = tmp_path / "imagebuild"
    fake.write_text(IMAGEBUILD)
    fake.chmod(0o755)
    base = {k: v for k, v in os.environ.items() if not k.startswith("SAGECODE_")}
    return {
        **base, "HOME": str(tmp_path / "home"), "SAGECODE_IMAGEBUILD": str(fake),
        "SAGECODE_ENGINE_WAIT": "0", "SAGECODE_JUPYTER_ENV": str(tmp_path / "no-jupyter"),
        "FAKE_RECORD": str(tmp_path / "record"),
    }  # fmt: skip


def state_of(env: dict[str, str]) -> StatePaths:
    """The state folder the settings point at."""
    return lifecycle.load_settings(env).state


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m runtime.lifecycle ARGS`` in ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "runtime.lifecycle", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def ended(state: StatePaths, seconds: float = 30) -> str:
    """The setup phase once the background job is done: the phase is final and the job has
    let go of its lock. The job marks the phase just before it exits; a hook run in between
    would find the job still running, and start none."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = (state.run / "setup-state").read_text() if (state.run / "setup-state").exists() else ""
        if text.startswith(("ready", "failed")):
            fd = lifecycle.try_lock(state.run / lifecycle.JOB_LOCK)
            if fd is not None:
                os.close(fd)
                return text
        time.sleep(0.1)
    raise AssertionError((state.logs / "lifecycle.log").read_text())


def calls(env: dict[str, str]) -> list[str]:
    """The recorded image-build command lines."""
    path = Path(env["FAKE_RECORD"])
    return path.read_text().splitlines() if path.exists() else []


def test_settings_default_to_the_notebook_layout(env: dict[str, str]) -> None:
    """Defaults: state on the SageMaker volume, JupyterSystemEnv under anaconda3, python -m imagebuild."""
    home = Path(env["HOME"])
    base = {"HOME": str(home)}
    s = lifecycle.load_settings(base)
    assert s.state.root == home / "SageMaker/.sagecode"
    assert s.jupyter_env == home / "anaconda3/envs/JupyterSystemEnv"
    assert s.imagebuild == (sys.executable, "-I", "-m", "imagebuild")
    assert s.wrapper == home / "SageMaker/.sagecode/venv/bin/code-server"
    assert (s.engine_wait, s.image_ref, s.container) == (300.0, "", "sagecode")


def test_settings_reject_a_bad_engine_wait(env: dict[str, str]) -> None:
    """A non-number SAGECODE_ENGINE_WAIT is a usage error naming the variable."""
    with pytest.raises(UsageError, match="SAGECODE_ENGINE_WAIT"):
        lifecycle.load_settings({**env, "SAGECODE_ENGINE_WAIT": "soon"})


def test_image_args_build_first_then_restore_or_pull(env: dict[str, str]) -> None:
    """No saved image: build; a saved one: restore; SAGECODE_IMAGE_REF: restore (which pulls)."""
    s = lifecycle.load_settings(env)
    root = str(s.state.root)
    assert lifecycle.image_args(s) == ["build", "--state-dir", root]
    pulled = lifecycle.load_settings({**env, "SAGECODE_IMAGE_REF": "ghcr.io/o/sagecode:1"})
    assert lifecycle.image_args(pulled) == ["restore", "--state-dir", root]
    s.state.images.mkdir(parents=True)
    (s.state.images / "current.json").write_text("{}")
    assert lifecycle.image_args(s) == ["restore", "--state-dir", root]


def test_hook_marks_running_then_its_job_marks_ready(env: dict[str, str]) -> None:
    """The quick part says 'running' with the log before returning; the job builds, then 'ready'."""
    state = state_of(env)
    done = cli(env, "start")
    assert done.returncode == 0, done.stderr
    assert (state.run / "setup-state").read_text() in (f"running {state.logs}/lifecycle.log\n", "ready\n")
    assert ended(state) == "ready\n"
    assert calls(env) == [f"build --state-dir {state.root}"]
    assert (state.home / ".zshrc").is_file()
    assert "preparing the image in the background (pid " in done.stdout


def test_two_hooks_at_once_start_one_job(env: dict[str, str]) -> None:
    """create and start together: one job takes the lock, the other hook says so; one build."""
    slow = {**env, "FAKE_SLEEP": "2"}
    started = [subprocess.Popen([sys.executable, "-m", "runtime.lifecycle", hook], env=slow,
                                stdout=subprocess.PIPE, text=True) for hook in lifecycle.HOOKS]  # fmt: skip
    outputs = "".join(process.communicate(timeout=60)[0] for process in started)
    assert ended(state_of(env)) == "ready\n"
    assert [line.split()[0] for line in calls(env)] == ["build"]
    assert outputs.count("preparing the image in the background") == 1
    assert outputs.count("already being prepared in the background") == 1


def test_hook_is_idempotent(env: dict[str, str]) -> None:
    """A second run rewrites neither the hint nor the settings and restores instead of building."""
    state = state_of(env)
    cli(env, "create")
    ended(state)
    bashrc, settings = Path(env["HOME"], ".bashrc"), state.root / "lifecycle.json"
    before = (bashrc.read_bytes(), settings.stat().st_mtime_ns)
    assert "terminal hint already in" in cli(env, "start").stdout
    assert ended(state) == "ready\n"
    assert before == (bashrc.read_bytes(), settings.stat().st_mtime_ns)
    assert [line.split()[0] for line in calls(env)] == ["build", "restore"]
    assert bashrc.read_text().count(START) == 1


def test_failed_build_marks_failed_then_the_next_boot_retries(env: dict[str, str]) -> None:
    """A failed build leaves 'failed <log>' and the log says why; the next hook run builds again."""
    state = state_of(env)
    cli({**env, "FAKE_BUILD_FAIL": "1"}, "start")
    assert ended(state) == f"failed {state.logs}/lifecycle.log\n"
    assert "failed: imagebuild build exited with status 3" in (state.logs / "lifecycle.log").read_text()
    cli(env, "start")
    assert ended(state) == "ready\n"
    assert [line.split()[0] for line in calls(env)] == ["build", "build"]


def test_failed_quick_step_stays_failed_after_the_job(env: dict[str, str], tmp_path: Path) -> None:
    """A glue install that fails marks 'failed', prints why, exits 1; the image job does not hide it."""
    jupyter = tmp_path / "jupyter-env"
    (jupyter / "bin").mkdir(parents=True)
    (jupyter / "bin/python").write_text("#!/bin/sh\nexit 1\n")
    (jupyter / "bin/python").chmod(0o755)
    state = state_of(env)
    (state.root / "wheelhouse").mkdir(parents=True)
    (state.root / "wheelhouse/sagecode_jupyter-0.1.0-py3-none-any.whl").write_bytes(b"")
    done = cli({**env, "SAGECODE_JUPYTER_ENV": str(jupyter)}, "start")
    assert done.returncode == 1
    assert "register glue failed: could not pip install into" in done.stdout
    assert ended(state) == f"failed {state.logs}/lifecycle.log\n"
    time.sleep(1.5)  # the job has finished (the build ran); the mark is still 'failed'
    assert (state.run / "setup-state").read_text().startswith("failed ")


def test_hook_keeps_its_settings_for_update(env: dict[str, str]) -> None:
    """The hook saves its SAGECODE_* settings (mode 600); update builds with them."""
    state = state_of(env)
    cli({**env, "SAGECODE_BASE_IMAGE": "local/debian:bookworm"}, "start")
    ended(state)
    saved = json.loads((state.root / "lifecycle.json").read_text())
    assert saved["SAGECODE_BASE_IMAGE"] == "local/debian:bookworm"
    assert (state.root / "lifecycle.json").stat().st_mode & 0o777 == 0o600
    assert maintenance.with_saved(env)["SAGECODE_BASE_IMAGE"] == "local/debian:bookworm"
    assert maintenance.with_saved({**env, "SAGECODE_BASE_IMAGE": "other"})["SAGECODE_BASE_IMAGE"] == "other"


def test_update_builds_the_version_and_stops_nothing(env: dict[str, str]) -> None:
    """update runs one build with --code-server VERSION and says the next launch uses it."""
    state = state_of(env)
    done = cli(env, "update", "4.140.0")
    assert done.returncode == 0, done.stderr
    assert calls(env) == [f"build --state-dir {state.root} --code-server 4.140.0"]
    assert "the editor runs it from its next launch" in done.stdout
    assert "nothing was stopped" in done.stdout


def test_update_failure_is_one_line_and_status_2(env: dict[str, str]) -> None:
    """A failed update build exits 2 with one error line; 'latest' is the default version."""
    done = cli({**env, "FAKE_BUILD_FAIL": "1"}, "update")
    assert done.returncode == 2
    assert done.stderr.strip() == "sagecode: imagebuild build exited with status 3 (see above)"
    assert calls(env)[0].endswith("--code-server latest")


def installed(env: dict[str, str]) -> StatePaths:
    """A state folder as the hooks leave it, a user's own .bashrc lines and a workspace file."""
    state = state_of(env)
    for name in maintenance.OURS:
        (state.root / name).mkdir(parents=True, exist_ok=True)
    (state.home / ".local/share/code-server").mkdir(parents=True)
    bashrc = Path(env["HOME"], ".bashrc")
    bashrc.write_text("alias ll='ls -l'\n")
    install_host_hint(bashrc, state)
    Path(env["HOME"], "SageMaker/notebook.ipynb").write_text("{}")
    return state


def test_uninstall_removes_ours_and_keeps_home_and_workspace(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """uninstall removes the hint block, the engine objects and sagecode's folders only."""
    engine: list[str] = []
    monkeypatch.setattr(maintenance, "_engine", engine.append)
    state = installed(env)
    code = maintenance.uninstall(lifecycle.load_settings(env), purge=False, dry_run=False)
    assert code == 0
    assert engine == ["sagecode"]
    assert sorted(p.name for p in state.root.iterdir()) == ["home"]
    assert Path(env["HOME"], ".bashrc").read_text() == "alias ll='ls -l'\n"
    assert Path(env["HOME"], "SageMaker/notebook.ipynb").exists()


def test_uninstall_purge_removes_the_state_folder(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--purge removes the editor's home too; the workspace stays."""
    monkeypatch.setattr(maintenance, "_engine", lambda name: None)
    state = installed(env)
    maintenance.uninstall(lifecycle.load_settings(env), purge=True, dry_run=False)
    assert not state.root.exists()
    assert Path(env["HOME"], "SageMaker/notebook.ipynb").exists()


def test_uninstall_dry_run_changes_nothing(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--dry-run lists what would go and removes nothing."""
    monkeypatch.setattr(maintenance, "_engine", lambda name: pytest.fail("touched the engine"))
    state = installed(env)
    before = sorted(p.name for p in state.root.iterdir())
    maintenance.uninstall(lifecycle.load_settings(env), purge=False, dry_run=True)
    assert sorted(p.name for p in state.root.iterdir()) == before
    assert f"would remove {state.root / 'venv'}" in capsys.readouterr().out


def test_uninstall_refuses_while_the_job_runs(env: dict[str, str]) -> None:
    """A running setup job (its lock held) makes uninstall stop before removing anything."""
    state = installed(env)
    fd = lifecycle.try_lock(state.run / lifecycle.JOB_LOCK)
    assert fd is not None
    try:
        with pytest.raises(UsageError, match="still running"):
            maintenance.uninstall(lifecycle.load_settings(env), purge=False, dry_run=False)
    finally:
        os.close(fd)
    assert (state.root / "venv").is_dir()


def test_remove_block_undoes_an_appended_block() -> None:
    """Removing the block gives back the user's text, wherever the block was."""
    for text in ("", "a\n", "a\nb\n"):
        assert remove_block(replace_block(text, ("x",))) == text
    middle = replace_block("a\n", ("x",)) + "b\n"
    assert remove_block(middle) == "a\n\nb\n"


def test_engine_env_finds_the_rootless_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no system socket and no DOCKER_HOST, the user's rootless socket is used."""
    monkeypatch.setattr(lifecycle, "SYSTEM_SOCKET", tmp_path / "absent.sock")
    monkeypatch.setattr(lifecycle, "ROOTLESS_SOCKET", str(tmp_path / "{uid}.sock"))
    assert "DOCKER_HOST" not in lifecycle.engine_env({}, 1001)
    (tmp_path / "1001.sock").touch()
    assert lifecycle.engine_env({}, 1001)["DOCKER_HOST"] == f"unix://{tmp_path}/1001.sock"
    assert lifecycle.engine_env({"DOCKER_HOST": "tcp://x:1"}, 1001)["DOCKER_HOST"] == "tcp://x:1"


def test_wait_for_engine_gives_up_with_a_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An engine that never answers ends the wait with an error naming the time waited."""
    (tmp_path / "docker").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(lifecycle, "ENGINE_POLL_S", 0.05)
    with pytest.raises(SagecodeError, match="did not answer within 0 s"):
        lifecycle.wait_for_engine(0.2)
