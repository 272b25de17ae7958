"""Inside a container: STS GetCallerIdentity with the credentials the editor's SDKs get there.

Standard library only (any python3 >= 3.7), so it runs in every image, with or without
the AWS CLI. Like the SDKs it takes the credentials from the container-credentials
provider (the relay's forwarder, sending the token file's content), signs the request
with Signature Version 4 and picks the endpoint from ``AWS_ENDPOINT_URL_STS``, then
``AWS_ENDPOINT_URL``, then the region's own STS endpoint. Prints one line, never a key:
``ok ACCOUNT ARN`` or ``fail REASON``.

Usage: python3 sts_probe.py
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

QUERY = "Action=GetCallerIdentity&Version=2011-06-15"
WAIT = 10.0  # the forwarder starts beside this script


def why(error: Exception) -> str:
    return (type(error).__name__ + ": " + str(error)).replace("\n", " ")[:160]


def credentials() -> dict[str, str]:
    headers: dict[str, str] = {}
    token_file = os.environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
    if token_file:
        headers["Authorization"] = Path(token_file).read_text().strip()
    uri = os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
    request = urllib.request.Request(http_only(uri), headers=headers)  # noqa: S310 - checked
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    deadline = time.monotonic() + WAIT
    while True:
        try:
            with opener.open(request, timeout=5) as answer:
                return dict(json.loads(answer.read().decode()))
        except urllib.error.URLError as error:
            if isinstance(error, urllib.error.HTTPError) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def http_only(url: str) -> str:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"not an HTTP URL: {url[:80]}")
    return url


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def endpoint(name: str) -> str:
    given = os.environ.get("AWS_ENDPOINT_URL_STS") or os.environ.get("AWS_ENDPOINT_URL")
    if given:
        return given.rstrip("/")
    return "https://sts." + name + (".amazonaws.com.cn" if name.startswith("cn-") else ".amazonaws.com")


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sign(keys: dict[str, str], url: str, name: str, now: datetime.datetime) -> dict[str, str]:
    """The headers of a SigV4-signed GET of ``url`` (whose query is already canonical)."""
    parts = urllib.parse.urlsplit(url)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    headers = {"host": parts.netloc, "x-amz-date": stamp}
    if keys.get("Token"):
        headers["x-amz-security-token"] = keys["Token"]
    names = ";".join(sorted(headers))
    lines = "".join(key + ":" + headers[key] + "\n" for key in sorted(headers))
    empty = hashlib.sha256(b"").hexdigest()
    canonical = "\n".join(["GET", parts.path or "/", parts.query, lines, names, empty])
    scope = day + "/" + name + "/sts/aws4_request"
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    key = ("AWS4" + keys["SecretAccessKey"]).encode()
    for part in (day, name, "sts", "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, "\n".join(["AWS4-HMAC-SHA256", stamp, scope, digest]).encode(), hashlib.sha256)
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={keys['AccessKeyId']}/{scope}, "
        f"SignedHeaders={names}, Signature={signature.hexdigest()}"
    )
    return headers


def field(tag: str, body: str) -> str:
    found = re.search("<" + tag + ">([^<]*)</" + tag + ">", body)
    return found.group(1) if found else ""


def probe() -> str:
    try:
        keys = credentials()
    except Exception as error:
        return "fail no credentials from the relay (" + why(error) + ")"
    name = region()
    url = endpoint(name) + "/?" + QUERY
    now = datetime.datetime.now(datetime.timezone.utc)
    try:
        request = urllib.request.Request(http_only(url), headers=sign(keys, url, name, now))  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - http(s) only, checked
            body = answer.read().decode()
    except urllib.error.HTTPError as error:
        body = error.read().decode(errors="replace")
        said = (field("Code", body) + ": " + field("Message", body))[:160]
        return f"fail STS at {endpoint(name)} refused them (HTTP {error.code} {said})"
    except Exception as error:
        return f"fail cannot reach STS at {endpoint(name)} ({why(error)})"
    return f"ok {field('Account', body)} {field('Arn', body)}"


if __name__ == "__main__":
    print(probe())
