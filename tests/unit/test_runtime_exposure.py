"""code-server runs with ``--auth none`` only where no other host can reach it: whatever address
the caller asks for, on every engine mode and network, the editor is published on 127.0.0.1,
listens on 127.0.0.1 with host networking, or serves a unix socket."""

from __future__ import annotations

import pytest

from runtime.usermap import UserMapping
from tests.unit.test_runtime_plan import REMAP, ROOTFUL, ROOTLESS, plan

ASKED = ["127.0.0.1:8888", "0.0.0.0:8888", "[::]:8888", "10.0.0.5:8888"]
MAPPINGS = {"rootful": ROOTFUL, "rootless": ROOTLESS, "remap": REMAP}


def _values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == flag]


@pytest.mark.parametrize("network", ["bridge", "host"])
@pytest.mark.parametrize("mapping", MAPPINGS.values(), ids=MAPPINGS.keys())
@pytest.mark.parametrize("asked", ASKED)
def test_exposure_auth_none_only_on_loopback(asked: str, mapping: UserMapping, network: str) -> None:
    """Any --bind-addr: published on 127.0.0.1 only, or host network with code-server on 127.0.0.1."""
    argv = plan(["--auth", "none", "--bind-addr", asked], mapping, network=network)
    assert _values(argv, "--auth") == ["none"]
    published = _values(argv, "--publish")
    if _values(argv, "--network") == ["host"]:
        assert published == []
        assert _values(argv, "--bind-addr") == ["127.0.0.1:8888"]
    else:
        assert published == ["127.0.0.1:8888:8888"]
    assert "-p" not in argv
    assert "--publish-all" not in argv
    assert "-P" not in argv


@pytest.mark.parametrize("mapping", MAPPINGS.values(), ids=MAPPINGS.keys())
def test_exposure_socket_mode_publishes_nothing(mapping: UserMapping) -> None:
    """Socket mode: no port published, no host network, the socket private to its owner."""
    argv = plan(["--auth", "none", "--socket", "/tmp/jsp-1/socket"], mapping)
    assert _values(argv, "--publish") == []
    assert _values(argv, "--network") == []
    assert _values(argv, "--socket-mode") == ["600"]
