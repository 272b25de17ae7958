"""Fixtures for the credential relay's integration tests (load with ``pytest_plugins``).

See ``credential_support`` for what they stand in for and why.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from imagebuild.manifest import Manifest
from tests.integration.conftest import need
from tests.integration.credential_support import RotatingImds, bridge_gateway, outward_address
from tests.integration.runtime_support import free_port


def moto_server(host: str) -> Iterator[str]:
    """moto's server on ``host`` until the generator is closed; yields its URL."""
    port = free_port()
    binary = Path(sys.executable).parent / "moto_server"
    need(binary.exists(), "moto[server] is not installed (the test extra)")
    process = subprocess.Popen([str(binary), "-H", host, "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + 30
    while subprocess.run(["curl", "-sf", "-o", "/dev/null", f"{url}/latest/meta-data/"],
                         check=False).returncode:  # fmt: skip
        assert process.poll() is None, "moto_server exited"
        assert time.monotonic() < deadline, "moto_server did not answer"
        time.sleep(0.2)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    """moto's server on 127.0.0.1: the host's IMDS (and STS for the host)."""
    yield from moto_server("127.0.0.1")


@pytest.fixture(scope="module")
def moto_sts() -> Iterator[str]:
    """moto's server on the bridge gateway: an STS endpoint containers reach."""
    yield from moto_server(bridge_gateway())


@pytest.fixture(scope="module")
def moto_sts_outward() -> Iterator[str]:
    """moto's server on the host's outward address: an STS endpoint a rootless engine's containers reach."""
    yield from moto_server(outward_address())


@pytest.fixture
def rotating_imds() -> Iterator[str]:
    """The rotating fake IMDS on 127.0.0.1, at generation 1."""
    RotatingImds.generation = 1
    server = ThreadingHTTPServer(("127.0.0.1", 0), RotatingImds)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def container_sdk(editor_image: Manifest) -> Iterator[Path]:
    """botocore, boto3 and the AWS CLI v1 for the container's python3 (pure Python, from PyPI)."""
    folder = Path(tempfile.mkdtemp(prefix="sagecode-test-sdk-", dir="/tmp"))
    # botocore and s3transfer named too: some indexes serve awscli wheels without its requirements
    packages = ["awscli", "boto3", "botocore", "s3transfer"]
    pip = [sys.executable, "-m", "pip", "install", "-q", "--ignore-installed", "--target", str(folder)]
    done = subprocess.run([*pip, *packages], capture_output=True, text=True, check=False)
    need(done.returncode == 0, f"cannot install the AWS SDKs for the container: {done.stderr[-300:]}")
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
