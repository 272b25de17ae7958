"""The wrapper started as jupyter-server-proxy starts it, on the real engine with the real image."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from typing import Optional

import pytest

from runtime.heartbeat import heartbeat_file
from tests.integration.listeners import (
    descendants,
    is_loopback,
    listening_by,
    net_namespace,
    processes_named,
)
from tests.integration.runtime_support import Sandbox, get, host_addresses, listening_addresses

pytest_plugins = ["tests.integration.runtime_fixtures"]
pytestmark = [pytest.mark.engine, pytest.mark.image]
STOP_BOUND = 15.0


def wait_gone(box: Sandbox, timeout: float) -> bool:
    """Whether every container of the sandbox is gone within ``timeout``."""
    deadline = time.monotonic() + timeout
    while box.container_ids():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def wait_replaced(box: Sandbox, old: list[str], timeout: float) -> bool:
    """Whether, within ``timeout``, the sandbox's containers are new ones (the old are gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ids = box.container_ids()
        if ids and not set(ids) & set(old):
            return True
        time.sleep(0.2)
    return False


def test_launch_tcp_serves_healthz_on_loopback_only(sandbox: Sandbox) -> None:
    """/healthz answers on 127.0.0.1:PORT; nothing listens on, or answers from, other addresses."""
    launch = sandbox.launch_tcp()
    assert launch.wait_ready()["status"] in ("alive", "expired")
    assert launch.port is not None
    assert listening_addresses(launch.port) == {"127.0.0.1"}
    ports = sandbox.docker("port", sandbox.name).stdout.splitlines()
    assert ports == [f"{launch.port}/tcp -> 127.0.0.1:{launch.port}"]
    for address in host_addresses():
        with socket.socket() as probe:
            probe.settimeout(2)
            assert probe.connect_ex((address, launch.port)) != 0, address


def test_launch_sigterm_stops_container_within_seconds(sandbox: Sandbox) -> None:
    """SIGTERM to the wrapper (JSP stopping it) removes the container and exits 0, in seconds."""
    launch = sandbox.launch_tcp()
    launch.wait_ready()
    started = time.monotonic()
    launch.process.send_signal(signal.SIGTERM)
    assert launch.process.wait(STOP_BOUND) == 0
    assert wait_gone(sandbox, STOP_BOUND - (time.monotonic() - started))
    took = time.monotonic() - started
    print(f"SIGTERM to wrapper exit and container gone: {took:.1f} s")
    assert took < STOP_BOUND


def test_launch_second_launch_leaves_one_working_editor(sandbox: Sandbox) -> None:
    """A second launch while one runs supersedes it: the first exits 0, one container serves."""
    first = sandbox.launch_tcp()
    first.wait_ready()
    second = sandbox.launch_tcp()
    second.wait_ready()
    assert first.process.wait(30) == 0
    assert len(sandbox.container_ids()) == 1
    assert second.healthz() is not None
    with pytest.raises(ConnectionRefusedError):
        get(first.port, None, "/healthz")
    assert "another editor" in second.log()


def test_launch_replaces_leftover_container(sandbox: Sandbox) -> None:
    """A container left by a wrapper killed with SIGKILL is replaced by the next launch."""
    first = sandbox.launch_tcp()
    first.wait_ready()
    old = sandbox.container_ids()
    first.process.kill()
    first.process.wait()
    assert sandbox.container_ids() == old  # the editor outlived its wrapper
    second = sandbox.launch_tcp(first.port)  # the same port, still held by the leftover
    assert wait_replaced(sandbox, old, 60), second.log()
    second.wait_ready()
    assert second.process.poll() is None
    assert len(sandbox.container_ids()) == 1


def test_launch_socket_mode_serves_over_the_socket(sandbox: Sandbox) -> None:
    """With --socket the editor answers over the unix socket and publishes no port."""
    launch = sandbox.launch_socket()
    assert launch.wait_ready()["status"] in ("alive", "expired")
    assert launch.sock is not None
    assert launch.sock.is_socket()
    assert sandbox.docker("port", sandbox.name).stdout.strip() == ""
    status, body = get(None, launch.sock, "/")
    assert status in (200, 302), body[:200]


def test_launch_logs_output_and_heartbeat_on_volume(sandbox: Sandbox) -> None:
    """code-server's output lands in logs/editor.log; a request touches the documented heartbeat."""
    launch = sandbox.launch_tcp()
    launch.wait_ready()
    beat = heartbeat_file(sandbox.state / "home")
    assert not beat.exists()  # /healthz does not count as activity
    assert get(launch.port, None, "/")[0] in (200, 302)
    deadline = time.monotonic() + 10
    while not beat.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert beat.exists()
    assert "HTTP server listening on http://0.0.0.0:" in (sandbox.state / "logs" / "editor.log").read_text()
    assert "last activity" in sandbox.sagecode("status").stdout


def _port_proxies(port: Optional[int]) -> set[int]:
    """The engine's userland proxies (docker-proxy) of ``port``."""
    return {pid for pid in processes_named("docker-proxy")
            if port is not None and f"-host-port\0{port}\0" in Path(f"/proc/{pid}/cmdline").read_text()}


def _host_side_listeners(launch_pid: int, proxies: set[int]) -> set[str]:
    """What the wrapper's processes and ``proxies`` listen on in the host's network namespace."""
    pids = descendants(launch_pid) | proxies
    return listening_by({pid for pid in pids if net_namespace(pid) == net_namespace(os.getpid())})


@pytest.mark.parametrize("mode", ["tcp", "socket"])
def test_launch_listens_on_nothing_but_loopback(sandbox: Sandbox, mode: str) -> None:
    """While the editor runs and serves, no process of the wrapper (nor the engine's proxy of its port)
    listens on the host beyond 127.0.0.1; in socket mode none listens on TCP at all."""
    launch = sandbox.launch_tcp() if mode == "tcp" else sandbox.launch_socket()
    launch.wait_ready()
    assert get(launch.port, launch.sock, "/")[0] in (200, 302)
    proxies = _port_proxies(launch.port)
    found = _host_side_listeners(launch.process.pid, proxies)
    assert [a for a in found if not is_loopback(a)] == []
    if proxies:  # the engine's userland proxy is the one listener, on loopback
        assert found == {f"127.0.0.1:{launch.port}"}
    if mode == "socket":
        assert found == set()
