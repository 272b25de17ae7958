"""doctor's judgements from facts (runtime.checks, runtime.credentials)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagebuild.errors import EngineError
from runtime.checks import (
    GIB,
    Check,
    Level,
    builder_check,
    engine_check,
    engine_down,
    glibc_check,
    jsp_check,
    mode_check,
    render,
    space_check,
    version_tuple,
)
from runtime.credentials import Probe, credentials_check, parse_probe
from runtime.usermap import HostUser

USER = HostUser(1001, 1001, "ec2-user")
ENV = Path("/home/ec2-user/anaconda3/envs/JupyterSystemEnv")


def test_version_tuple_reads_distro_versions() -> None:
    """Suffixes like ``+dfsg1`` or ``-ce`` do not hide the numbers."""
    assert version_tuple("26.1.5+dfsg1") == (26, 1, 5)
    assert version_tuple("20.10.7-ce") == (20, 10, 7)


@pytest.mark.parametrize(
    ("version", "says"),
    [("2.26", "would not run here (needs glibc 2.28)"), ("2.36", "would run here too")],
)
def test_glibc_says_whether_native_code_server_runs(version: str, says: str) -> None:
    """Amazon Linux 2's glibc 2.26 is too old for a native code-server; 2.28+ is not."""
    check = glibc_check(version)
    assert check.level is Level.OK
    assert says in check.detail


@pytest.mark.parametrize(("version", "level"), [("20.10.7", Level.PROBLEM), ("20.10.10", Level.OK)])
def test_engine_version_refused_before_clone3_fix(version: str, level: Level) -> None:
    """Docker before 20.10.10 is a problem (seccomp blocks clone3); from it on it is OK."""
    assert engine_check(version).level is level


def test_engine_down_keeps_the_fix() -> None:
    """An engine that does not answer is a problem with the engine error's own fix."""
    check = engine_down(
        EngineError("docker info: the Docker engine is not running", "start Docker, then retry")
    )
    assert (check.level, check.fix) == (Level.PROBLEM, "start Docker, then retry")


@pytest.mark.parametrize(
    ("info", "level", "says"),
    [
        ({"SecurityOptions": ["name=seccomp", "name=rootless"]}, Level.OK,
         "rootless: container root is uid 1001"),
        ({"SecurityOptions": ["name=seccomp"]}, Level.OK, "rootful: the editor runs as uid 1001"),
        ({"SecurityOptions": ["name=userns"], "DockerRootDir": "/var/lib/docker/1001.1001"}, Level.OK,
         "userns-remap: container root is uid 1001"),
        ({"SecurityOptions": ["name=userns"], "DockerRootDir": "/var/lib/docker/231072.231072"},
         Level.PROBLEM, "container root uid 231072"),
        ({"SecurityOptions": ["name=userns"], "DockerRootDir": "/data/docker"}, Level.WARNING, "unknown uid"),
    ],
)  # fmt: skip
def test_mode_check_judges_whose_files_the_editor_writes(
    info: dict[str, object], level: Level, says: str
) -> None:
    """Each engine kind is named; a remap onto someone else's uid is a problem."""
    check = mode_check(info, USER, "")
    assert check.level is level
    assert says in check.detail


def test_builder_without_cache_export_is_a_warning_with_fix() -> None:
    """The classic image store cannot export the build cache: a warning naming both ways out."""
    check = builder_check("0.13.1", "docker", can_export_cache=False)
    assert check.level is Level.WARNING
    assert "containerd-snapshotter" in check.fix
    assert "docker buildx create" in check.fix
    assert builder_check("0.13.1", "docker", can_export_cache=True).level is Level.OK


def test_space_uses_last_tar_twice_plus_three_gib() -> None:
    """Need = 2 x the last tar + 3 GiB: just enough is OK, a byte less is a problem."""
    need = 2 * GIB + 3 * GIB
    assert space_check(Path("/s"), need, GIB).level is Level.OK
    short = space_check(Path("/s"), need - 1, GIB)
    assert short.level is Level.PROBLEM
    assert "grow the notebook's volume" in short.fix


def test_space_without_tar_assumes_one_gib() -> None:
    """Before the first save the estimate says what it assumed."""
    assert "no saved tar yet" in space_check(Path("/s"), 100 * GIB, None).detail


@pytest.mark.parametrize(
    ("found", "version", "level"),
    [(False, None, Level.WARNING), (True, None, Level.PROBLEM), (True, "4.1.2", Level.PROBLEM),
     (True, "4.2.0", Level.OK), (True, "4.6.1", Level.OK)],
)  # fmt: skip
def test_jsp_requires_4_2_0(found: bool, version: str | None, level: Level) -> None:
    """jupyter-server-proxy must be there and at least 4.2.0; no such environment is a warning."""
    assert jsp_check(ENV, found, version).level is level


def test_render_prints_fix_only_when_not_ok() -> None:
    """Each check is one line; a fix follows a warning or problem; the last line counts them."""
    text = render([Check("a", Level.OK, "fine", "unused"), Check("b", Level.PROBLEM, "bad", "do x")])
    assert text.splitlines() == [
        "OK       a: fine",
        "problem  b: bad",
        "         fix: do x",
        "1 problem(s), 0 warning(s)",
    ]


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [("ok v2 nb-role\n", Probe("ok", "v2", "nb-role")), ("norole v1\n", Probe("norole", "v1")),
     ("fail URLError: timed out\n", Probe("fail", reason="URLError: timed out"))],
)  # fmt: skip
def test_parse_probe_lines(stdout: str, expected: Probe) -> None:
    """The probe's one line is read back."""
    assert parse_probe(stdout) == expected


def test_parse_probe_failure_keeps_last_error_line() -> None:
    """Anything but the probe's line (python3 missing in the image) is a failure with the reason."""
    got = parse_probe("", 'docker: Error response from daemon: exec: "python3": not found\n')
    assert got.outcome == "fail"
    assert "python3" in got.reason


@pytest.mark.parametrize(
    ("container", "host", "level", "says"),
    [
        (Probe("ok", "v2", "r"), None, Level.OK, "reaches the role r (IMDSv2)"),
        (Probe("ok", "v1", "r"), None, Level.WARNING, "only through IMDSv1"),
        (Probe("norole", "v2"), None, Level.WARNING, "has no role"),
        (Probe("fail", reason="timed out"), Probe("ok", "v2", "r"), Level.PROBLEM, "hop limit"),
        (Probe("fail", reason="timed out"), Probe("fail", reason="refused"), Level.WARNING, "not an EC2"),
    ],
)
def test_credentials_verdicts(container: Probe, host: Probe | None, level: Level, says: str) -> None:
    """The host's probe tells 'not an instance' from 'containers are cut off by the hop limit'."""
    check = credentials_check(container, host, "http://169.254.169.254", "/s/home")
    assert check.level is level
    assert says in check.detail
    if level is Level.PROBLEM:
        assert "SAGECODE_NETWORK=host" in check.fix
        assert "/s/home/.aws" in check.fix


def test_credentials_cut_off_containers_are_fine_when_relayed() -> None:
    """With the relay, a container that cannot reach IMDS itself is expected: OK, naming the role."""
    cut_off, host = Probe("fail", reason="timed out"), Probe("ok", "v2", "r")
    check = credentials_check(cut_off, host, "http://169.254.169.254", "/h", relayed=True)
    assert check.level is Level.OK
    assert check.detail.startswith("the host reaches the role r; the editor gets it through the relay")
