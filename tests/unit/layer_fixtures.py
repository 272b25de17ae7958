"""Helpers for the layer tests: a local HTTP server and the layers' shipped scripts.

The build's download steps are shell scripts; the tests run them for real against files
served on 127.0.0.1 (GitHub, AWS and vendor sites are unreachable here, and a test must
not depend on them anyway).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any, Optional

from imagebuild.layers.model import FILES_DIR


def load_script(path: Path, name: str) -> ModuleType:
    """A shipped Python script (not a package module) imported as module ``name``; registered
    in ``sys.modules`` so its dataclasses and pickling find it."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log on the test's stderr."""


@contextmanager
def serve(root: Path) -> Iterator[str]:
    """Serve ``root`` over HTTP on 127.0.0.1; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def script(name: str) -> Path:
    """A script shipped with the layers."""
    return FILES_DIR / name


def run_sh(command: str, env: Optional[Mapping[str, str]] = None,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``command`` in ``sh``, with no proxy in the way of 127.0.0.1."""
    full = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost", **(env or {})}
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=full,
                          timeout=timeout, check=False)
