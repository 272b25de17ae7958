"""The credentials probe script against a stand-in metadata service (runtime.credentials.PROBE)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from runtime.credentials import PROBE, Probe, parse_probe
from tests.unit.runtime_fakes import FakeIMDS


def probe(url: str) -> Probe:
    """Run the probe as doctor runs it on the host."""
    done = subprocess.run(
        [sys.executable, "-I", "-c", PROBE, url], capture_output=True, text=True, timeout=30, check=False
    )
    return parse_probe(done.stdout, done.stderr)


@pytest.mark.parametrize(
    ("imds", "expected"),
    [
        (FakeIMDS(), Probe("ok", "v2", "nb-role")),
        (FakeIMDS(token=False, v1=True), Probe("ok", "v1", "nb-role")),
        (FakeIMDS(role=""), Probe("norole", "v2")),
    ],
)
def test_probe_reads_role_through_imds(imds: FakeIMDS, expected: Probe) -> None:
    """IMDSv2 first, IMDSv1 when no token comes back, and an instance without a role."""
    with imds:
        assert probe(imds.url) == expected


def test_probe_without_token_or_v1_fails_with_the_token_error() -> None:
    """IMDSv2 required and no token: the failure names the token's error, not v1's 401."""
    with FakeIMDS(token=False) as imds:
        got = probe(imds.url)
    assert got.outcome == "fail"
    assert "403" in got.reason


def test_probe_nothing_listening_fails() -> None:
    """No metadata service at all is a failure with the connection error."""
    with FakeIMDS() as imds:
        url = imds.url
    assert probe(url).outcome == "fail"
