"""The first-start script: the image's defaults go into a home once, never over the user's.

It is loaded from the file the image ships and run against a temporary home with the
real seed lists and templates of the agents and editor layers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from imagebuild.layers.model import FILES_DIR
from tests.unit.layer_fixtures import load_script

first_start = load_script(FILES_DIR / "first_start.py", "sagecode_first_start")


@pytest.fixture
def seeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The seeds dir as the image lays it out: <layer>.json with <layer>/<template>."""
    root = tmp_path / "seeds"
    for layer in ("agents", "editor"):
        shutil.copytree(FILES_DIR / layer, root / layer)
        (root / layer / "seeds.json").rename(root / f"{layer}.json")
    monkeypatch.setattr(first_start, "SEEDS_DIR", root)
    return root


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty, writable home."""
    path = tmp_path / "home"
    path.mkdir()
    return path


def _env(home: Path, **extra: str) -> dict[str, str]:
    return {"HOME": str(home), "PATH": "/usr/bin:/bin", "SHELL": "/bin/sh", **extra}


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def test_first_start_writes_bedrock_defaults(seeds: Path, home: Path) -> None:
    """A new home gets Claude Code's and Cline's Bedrock settings and an AWS default profile."""
    first_start.main(["shell"], _env(home, SAGECODE_AWS_REGION="eu-west-1"))
    claude = _json(home / ".claude/settings.json")
    bedrock = {"CLAUDE_CODE_USE_BEDROCK": "1", "AWS_PROFILE": "default", "AWS_REGION": "eu-west-1"}
    assert claude["env"] == bedrock
    assert claude["model"] == first_start.DEFAULT_MODEL
    cline = _json(home / ".cline/data/globalState.json")
    assert (cline["actModeApiProvider"], cline["awsRegion"]) == ("bedrock", "eu-west-1")
    assert cline["actModeApiModelId"] == "anthropic.claude-opus-4-6-v1"  # without the geo prefix
    assert (home / ".aws/config").read_text() == "[default]\nregion = eu-west-1\n"


def test_first_start_run_time_env_wins(seeds: Path, home: Path) -> None:
    """AWS_REGION and SAGECODE_BEDROCK_MODEL at run time override the image's defaults."""
    env = _env(home, SAGECODE_AWS_REGION="eu-west-1", AWS_REGION="ap-southeast-2",
               SAGECODE_BEDROCK_MODEL="eu.anthropic.claude-x")
    first_start.main(["shell"], env)
    claude = _json(home / ".claude/settings.json")
    assert (claude["model"], claude["env"]["AWS_REGION"]) == ("eu.anthropic.claude-x", "ap-southeast-2")


def test_first_start_merge_keeps_user_changes(seeds: Path, home: Path) -> None:
    """A user's own settings survive the merge; only keys they lack are added."""
    user = {"model": "my-model", "env": {"AWS_REGION": "us-west-2", "MINE": "1"}, "theme": "light"}
    (home / ".claude").mkdir()
    (home / ".claude/settings.json").write_text(json.dumps(user))
    first_start.main(["shell"], _env(home))
    merged = _json(home / ".claude/settings.json")
    assert merged["model"] == "my-model"
    assert merged["theme"] == "light"
    assert merged["env"] == {"CLAUDE_CODE_USE_BEDROCK": "1", "AWS_PROFILE": "default",
                             "AWS_REGION": "us-west-2", "MINE": "1"}


def test_first_start_only_once(seeds: Path, home: Path) -> None:
    """After the first start, a key the user deleted stays deleted."""
    first_start.main(["shell"], _env(home))
    settings = home / ".claude/settings.json"
    edited = _json(settings)
    del edited["awsAuthRefresh"]
    settings.write_text(json.dumps(edited))
    first_start.main(["shell"], _env(home, AWS_REGION="eu-central-1"))
    assert _json(settings) == edited


def test_first_start_never_overwrites_user_files(seeds: Path, home: Path) -> None:
    """Settings files the user already has are left byte for byte."""
    user_settings = home / ".local/share/code-server/User/settings.json"
    user_settings.parent.mkdir(parents=True)
    user_settings.write_text("// mine\n{}\n")
    (home / ".aws").mkdir()
    (home / ".aws/config").write_text("[profile x]\n")
    first_start.main(["shell"], _env(home))
    assert user_settings.read_text() == "// mine\n{}\n"
    assert (home / ".aws/config").read_text() == "[profile x]\n"


def test_first_start_bad_user_json_is_a_warning(seeds: Path, home: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A broken user file is left alone, with one warning line; the start goes on."""
    (home / ".claude").mkdir()
    (home / ".claude/settings.json").write_text("{not json")
    assert first_start.main(["shell"], _env(home)) == 0
    assert (home / ".claude/settings.json").read_text() == "{not json"
    assert "claude-code-bedrock not applied" in capsys.readouterr().err
    assert (home / ".cline/data/globalState.json").is_file()


def test_first_start_editor_settings(seeds: Path, home: Path) -> None:
    """User settings (JSONC) and Machine settings with python and shell resolved are placed."""
    first_start.main(["shell"], _env(home, SHELL="/bin/sh"))
    data = home / ".local/share/code-server"
    user = (data / "User/settings.json").read_text()
    assert '"workbench.colorTheme": "One Dark Pro"' in user
    assert "@" + "AWS_REGION@" not in user
    assert '{ "name": "AWS_REGION", "value": "us-east-1" }' in user
    machine = _json(data / "Machine/settings.json")
    assert machine["terminal.integrated.profiles.linux"]["zsh"]["path"] == "/bin/sh"
    assert Path(machine["python.defaultInterpreterPath"]).name.startswith("python3")


def test_first_start_follows_user_data_dir(seeds: Path, home: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """In code-server mode the settings go to its --user-data-dir; extensions start in the background."""
    started: list[list[str]] = []
    monkeypatch.setattr(first_start.subprocess, "Popen", lambda argv, **kw: started.append(argv))
    data = tmp_path / "data"
    first_start.main(["code-server", "--auth", "none", f"--user-data-dir={data}"], _env(home))
    assert (data / "User/settings.json").is_file()
    assert len(started) == 1
    assert started[0][-2:] == ["--user-data-dir", str(data)]
    assert started[0][2].endswith("editor/extensions.txt")


def test_first_start_extensions_only_for_code_server(seeds: Path, home: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A shell or a command does not start extension installs; SAGECODE_EXTENSIONS=0 stops them."""
    started: list[list[str]] = []
    monkeypatch.setattr(first_start.subprocess, "Popen", lambda argv, **kw: started.append(argv))
    first_start.main(["shell"], _env(home))
    first_start.main(["command"], _env(home))
    first_start.main(["code-server"], _env(home, SAGECODE_EXTENSIONS="0"))
    assert started == []


def test_first_start_unwritable_home_is_a_no_op(seeds: Path, tmp_path: Path) -> None:
    """With no writable home (a bare `docker run`), nothing is attempted."""
    assert first_start.main(["shell"], _env(tmp_path / "missing")) == 0
    assert not (tmp_path / "missing").exists()


def test_deep_merge_user_wins_at_every_level() -> None:
    """Nested objects merge key by key; any other user value replaces the default."""
    defaults = {"a": 1, "n": {"x": 1, "y": 2}, "l": [1]}
    user = {"n": {"y": 3}, "l": [], "b": 2}
    assert first_start.deep_merge(defaults, user) == {"a": 1, "n": {"x": 1, "y": 3}, "l": [], "b": 2}
