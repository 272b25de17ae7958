"""The opt-in engine data on the volume: config edits, guard rails, on/off with a fake engine.

A fake ``docker`` on PATH answers ``docker info`` from a file; the "restart" command
rewrites that file from daemon.json, as a real daemon reads its config when it starts.
``tests/integration/test_enginedata.py`` moves the real engine.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from imagebuild.errors import UsageError
from runtime import enginedata
from runtime.enginedata import Places

CONTAINERD_TOML = 'version = 2\n\n[plugins]\n  [plugins."io.containerd.internal.v1.opt"]\n    path = "/x"\n'
SNAPSHOTTER = [["driver-type", "io.containerd.snapshotter.v1"]]


def test_data_root_is_set_and_removed_keeping_other_keys(tmp_path: Path) -> None:
    config = {"features": {"containerd-snapshotter": True}}
    moved = enginedata.with_data_root(config, tmp_path)
    assert moved == {**config, "data-root": str(tmp_path)}
    assert enginedata.without_data_root(moved, tmp_path) == config


def test_a_data_root_set_by_someone_else_is_never_moved(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="already sets data-root to /mnt/docker"):
        enginedata.with_data_root({"data-root": "/mnt/docker"}, tmp_path)
    foreign = {"data-root": "/mnt/docker"}
    assert enginedata.without_data_root(foreign, tmp_path) == foreign


def test_containerd_root_goes_before_the_first_table_and_back(tmp_path: Path) -> None:
    moved = enginedata.with_containerd_root(CONTAINERD_TOML, tmp_path / "c")
    assert enginedata.containerd_root(moved) == str(tmp_path / "c")
    assert moved.index("root =") < moved.index("[plugins]")
    assert 'path = "/x"' in moved  # a nested key of the same shape is not the top-level root
    assert enginedata.with_containerd_root(moved, None).strip() == CONTAINERD_TOML.strip()


def test_a_foreign_containerd_root_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="already sets root"):
        enginedata.with_containerd_root('root = "/data/containerd"\n', tmp_path)


def test_room_needs_more_before_the_first_move(tmp_path: Path) -> None:
    enginedata.room(tmp_path / "not-yet", populated=False, min_free_gb=0.001)
    with pytest.raises(UsageError, match="grow the notebook's volume"):
        enginedata.room(tmp_path, populated=False, min_free_gb=1e9)
    enginedata.room(tmp_path, populated=True, min_free_gb=1e9)  # then only KEEP_FREE_GB


def test_restart_command_default_and_override() -> None:
    assert enginedata.restart_command({}, containerd=True) == ["systemctl", "restart", "containerd", "docker"]
    assert enginedata.restart_command({}, containerd=False) == ["systemctl", "restart", "docker"]
    override = {enginedata.RESTART_ENV: "svc restart 'x y'"}
    assert enginedata.restart_command(override, containerd=True) == ["svc", "restart", "x y"]


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A fake engine: ``docker info`` from a file, a restart that applies daemon.json."""
    etc = tmp_path / "etc"
    (etc / "containerd").mkdir(parents=True)
    (etc / "containerd/config.toml").write_text(CONTAINERD_TOML)
    info = tmp_path / "info.json"
    info.write_text(json.dumps({"DockerRootDir": "/var/lib/docker", "DriverStatus": SNAPSHOTTER}))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(f"#!/bin/sh\ncat {info}\n")
    (bin_dir / "docker").chmod(0o755)
    restarts = tmp_path / "restarts"
    restart = bin_dir / "restart"
    restart.write_text(
        f"#!{sys.executable}\nimport json, pathlib\n"
        f"cfg = json.loads(pathlib.Path({str(etc / 'docker/daemon.json')!r}).read_text())\n"
        f"info = json.loads(pathlib.Path({str(info)!r}).read_text())\n"
        "info['DockerRootDir'] = cfg.get('data-root', '/var/lib/docker')\n"
        f"pathlib.Path({str(info)!r}).write_text(json.dumps(info))\n"
        f"with open({str(restarts)!r}, 'a') as f: f.write('x')\n"
    )
    restart.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return {"env": {enginedata.RESTART_ENV: str(restart)}, "daemon_json": etc / "docker/daemon.json",
            "containerd_toml": etc / "containerd/config.toml", "restarts": restarts, "info": info}


def _restarts(engine: dict[str, Any]) -> int:
    path: Path = engine["restarts"]
    return len(path.read_text()) if path.exists() else 0


def test_on_moves_both_roots_once_then_off_puts_them_back(engine: dict[str, Any], tmp_path: Path) -> None:
    places = Places(tmp_path / "volume/engine")
    paths = {"daemon_json": engine["daemon_json"], "containerd_toml": engine["containerd_toml"]}
    said = enginedata.on(places, engine["env"], min_free_gb=0.001, **paths)
    assert "now on the volume" in said
    assert json.loads(engine["daemon_json"].read_text())["data-root"] == str(places.docker)
    assert enginedata.containerd_root(engine["containerd_toml"].read_text()) == str(places.containerd)
    assert (places.docker.stat().st_mode & 0o777) == 0o711
    assert _restarts(engine) == 1
    # every later start: nothing to change, no restart
    assert "already on the volume" in enginedata.on(places, engine["env"], min_free_gb=0.001, **paths)
    assert _restarts(engine) == 1
    assert "kept" in enginedata.off(places, engine["env"], **paths)
    assert "data-root" not in json.loads(engine["daemon_json"].read_text())
    assert enginedata.containerd_root(engine["containerd_toml"].read_text()) is None
    assert _restarts(engine) == 2
    assert "deleted" in enginedata.off(places, engine["env"], purge=True, **paths)
    assert not places.volume.exists()


def test_on_refuses_a_rootless_engine(engine: dict[str, Any], tmp_path: Path) -> None:
    engine["info"].write_text(json.dumps({"DockerRootDir": "/home/u/.local/share/docker",
                                          "SecurityOptions": ["name=seccomp", "name=rootless"]}))
    with pytest.raises(UsageError, match="rootless"):
        enginedata.on(Places(tmp_path / "v"), engine["env"], daemon_json=engine["daemon_json"],
                      containerd_toml=engine["containerd_toml"])
    assert not engine["daemon_json"].exists()


def test_on_without_room_changes_nothing(engine: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="free"):
        enginedata.on(Places(tmp_path / "v"), engine["env"], min_free_gb=1e9,
                      daemon_json=engine["daemon_json"], containerd_toml=engine["containerd_toml"])
    assert not engine["daemon_json"].exists()
    assert engine["containerd_toml"].read_text() == CONTAINERD_TOML


def test_main_refuses_without_root(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                   tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert enginedata.main(["on", "--volume", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "needs root" in err
