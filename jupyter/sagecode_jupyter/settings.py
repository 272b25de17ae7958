"""What the glue needs to know: the wrapper, the readiness timeout, the folder to open.

Each setting comes from the environment, else from the JSON file that the setup command
writes into the Jupyter environment, else a default:

| setting | variable | key in ``<prefix>/etc/sagecode/jupyter.json`` | default |
|---|---|---|---|
| wrapper | ``SAGECODE_WRAPPER`` | ``wrapper`` | ``~/SageMaker/.sagecode/venv/bin/code-server`` |
| timeout (s) | ``SAGECODE_JUPYTER_TIMEOUT`` | ``timeout`` | ``330`` |
| folder | ``SAGECODE_WORKSPACE`` | ``workspace`` | ``~/SageMaker``, else ``~`` |
| mode | ``SAGECODE_JUPYTER_MODE`` | ``mode`` | ``auto``; or ``socket``, ``tcp`` |

Mode ``auto`` uses a unix socket when the proxy can carry websockets over one, else TCP.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

# Relative to the Jupyter environment's prefix (sys.prefix of the Jupyter server).
CONFIG_RELPATH = Path("etc", "sagecode", "jupyter.json")
DEFAULT_WRAPPER_RELPATH = Path("SageMaker", ".sagecode", "venv", "bin", "code-server")
# Longer than the wrapper's own bounded wait for an image restore (SAGECODE_IMAGE_WAIT,
# 300 s by default): a slow first start then ends with the wrapper's explanation in the
# log, not with the proxy killing it and showing a bare 500.
DEFAULT_TIMEOUT = 330.0
MODES = ("auto", "socket", "tcp")


@dataclass(frozen=True)
class Settings:
    """The glue's settings, resolved."""

    wrapper: Path
    wrapper_origin: str  # where the wrapper's path came from, for the missing-wrapper message
    timeout: float
    workspace: Path
    mode: str = "auto"


def load_settings(env: Mapping[str, str], config_file: Path, home: Path) -> Settings:
    """Resolve every setting from ``env``, then ``config_file``, then the defaults."""
    config = read_config(config_file)
    wrapper, origin = _wrapper(env, config, config_file, home)
    timeout, workspace = _timeout(env, config), _workspace(env, config, home)
    return Settings(wrapper, origin, timeout, workspace, _mode(env, config))


def read_config(path: Path) -> dict[str, Any]:
    """The config file's object; a broken file is reported and ignored, not raised.

    jupyter-server-proxy drops a server whose entry point raises, so raising here would
    take the launcher card away instead of showing what is wrong.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        warn(f"ignoring {path}: {err}")
        return {}
    if not isinstance(data, dict):
        warn(f"ignoring {path}: not a JSON object")
        return {}
    return data


def warn(message: str) -> None:
    """One line in the Jupyter server's log (its stderr)."""
    print(f"sagecode: {message}", file=sys.stderr, flush=True)


def _wrapper(
    env: Mapping[str, str], config: Mapping[str, Any], config_file: Path, home: Path
) -> tuple[Path, str]:
    if env.get("SAGECODE_WRAPPER"):
        return Path(env["SAGECODE_WRAPPER"]).expanduser(), "SAGECODE_WRAPPER"
    configured = _text(config, "wrapper")
    if configured:
        return Path(configured).expanduser(), str(config_file)
    return home / DEFAULT_WRAPPER_RELPATH, "the default"


def _timeout(env: Mapping[str, str], config: Mapping[str, Any]) -> float:
    raw = env.get("SAGECODE_JUPYTER_TIMEOUT") or config.get("timeout")
    if raw is None:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        seconds = 0.0
    if seconds <= 0:
        warn(f"timeout {raw!r} is not a positive number of seconds; using {DEFAULT_TIMEOUT:g}")
        return DEFAULT_TIMEOUT
    return seconds


def _workspace(env: Mapping[str, str], config: Mapping[str, Any], home: Path) -> Path:
    chosen = env.get("SAGECODE_WORKSPACE") or _text(config, "workspace")
    if chosen:
        return Path(chosen).expanduser()
    sagemaker = home / "SageMaker"
    return sagemaker if sagemaker.is_dir() else home


def _mode(env: Mapping[str, str], config: Mapping[str, Any]) -> str:
    chosen = (env.get("SAGECODE_JUPYTER_MODE") or _text(config, "mode") or "auto").lower()
    if chosen not in MODES:
        warn(f"mode {chosen!r} is not one of {', '.join(MODES)}; using auto")
        return "auto"
    return chosen


def _text(config: Mapping[str, Any], key: str) -> Optional[str]:
    value = config.get(key)
    return value if isinstance(value, str) and value else None
