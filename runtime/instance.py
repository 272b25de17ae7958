"""Facts about the notebook instance: its name and region, and the editor's URL through Jupyter.

SageMaker writes ``/opt/ml/metadata/resource-metadata.json`` on every notebook instance
(``ResourceName``, ``ResourceArn``); Jupyter is then served at
``https://<name>.notebook.<region>.sagemaker.aws/`` and jupyter-server-proxy serves the
editor under the server's name, ``codeserver/``. Elsewhere only the path is known.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

RESOURCE_METADATA = Path("/opt/ml/metadata/resource-metadata.json")
# The entry-point name in jupyter/pyproject.toml (jupyter_serverproxy_servers), which JSP
# uses as the path: a unit test keeps the two equal.
PROXY_NAME = "codeserver"
PROXY_PATH = f"/{PROXY_NAME}/"


def notebook_url(metadata: Path = RESOURCE_METADATA) -> Optional[str]:
    """Jupyter's address on this notebook instance, or None off an instance."""
    data = _read_json(metadata)
    name = str(data.get("ResourceName") or "")
    arn = str(data.get("ResourceArn") or "").split(":")
    region = arn[3] if len(arn) > 3 else ""
    if not (name and region):
        return None
    return f"https://{name.lower()}.notebook.{region}.sagemaker.aws/"


def editor_url(metadata: Path = RESOURCE_METADATA) -> str:
    """The editor's URL through Jupyter, or only its path when the host is unknown."""
    base = notebook_url(metadata)
    return base.rstrip("/") + PROXY_PATH if base else PROXY_PATH


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
