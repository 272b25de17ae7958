"""Whether a container can reach the instance role's credentials: a real probe, judged.

The probe is a small Python script run twice: in a throwaway container of the editor's
image, on the editor's network, and (only when that fails) on the host. It asks the
instance metadata service for an IMDSv2 token, then the role and its credentials (never
printed), falling back to IMDSv1 as the SDKs do. Comparing the two runs tells "this is
not an instance" from "the hop limit keeps the token from containers".

The endpoint is the SDKs' ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` (default
``http://169.254.169.254``), so a stand-in can be tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from runtime.checks import Check, Level

NAME = "instance credentials"
# Python 3.6+ (whatever python3 the image has); proxies are bypassed, as NO_PROXY must
# name the metadata address for the SDKs anyway. Prints one line:
# "ok v2|v1 ROLE", "norole v2|v1", or "fail REASON".
PROBE = r"""
import json, sys, urllib.request as rq
base = sys.argv[1].rstrip("/")
opener = rq.build_opener(rq.ProxyHandler({}))
ROLES = "/latest/meta-data/iam/security-credentials/"
def get(path, headers, method="GET"):
    with opener.open(rq.Request(base + path, headers=headers, method=method), timeout=2) as r:
        return r.read().decode()
def why(e):
    return (type(e).__name__ + ": " + str(e)).replace("\n", " ")[:160]
def probe():
    headers, via, token_error = {}, "v1", None
    try:
        ttl = {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
        headers, via = {"X-aws-ec2-metadata-token": get("/latest/api/token", ttl, "PUT")}, "v2"
    except Exception as e:
        token_error = e
    try:
        roles = get(ROLES, headers).split()
        creds = json.loads(get(ROLES + roles[0], headers)) if roles else {}
    except Exception as e:
        if getattr(e, "code", None) == 404:  # the service answers: the instance has no role
            return "norole " + via
        return "fail " + why(token_error or e)
    return ("ok %s %s" % (via, roles[0])) if creds.get("AccessKeyId") else "norole " + via
print(probe())
"""


@dataclass(frozen=True)
class Probe:
    """One run of the probe: reached the credentials or not, how, and why not."""

    outcome: str  # "ok", "norole" or "fail"
    via: str = ""  # "v2" or "v1"
    role: str = ""
    reason: str = ""


def parse_probe(stdout: str, stderr: str = "") -> Probe:
    """The probe's one line; anything else (python3 missing, docker failing) is a failure."""
    words = stdout.strip().split(" ", 2) if stdout.strip() else []
    if words[:1] == ["ok"] and len(words) == 3:
        return Probe("ok", words[1], words[2])
    if words[:1] == ["norole"] and len(words) >= 2:
        return Probe("norole", words[1])
    if words[:1] == ["fail"]:
        return Probe("fail", reason=" ".join(words[1:]))
    lines = [line for line in (stderr or stdout).strip().splitlines() if line.strip()]
    return Probe("fail", reason=lines[-1].strip() if lines else "the probe printed nothing")


def credentials_check(
    container: Probe, host: Optional[Probe], endpoint: str, home: str, relayed: bool = False
) -> Check:
    """The verdict from the container's probe and the host's (None: not needed, not run).

    ``relayed``: the editor gets the host's credentials through the wrapper's relay, so a
    container that cannot reach IMDS itself is expected, not a problem.
    """
    host = host or Probe("fail", reason="not probed")
    fix = f"on a rootful engine SAGECODE_NETWORK=host, or put credentials in {home}/.aws"
    if container.outcome == "ok" and container.via == "v2":
        return Check(NAME, Level.OK, f"a container reaches the role {container.role} (IMDSv2)")
    if container.outcome == "ok":
        return Check(
            NAME,
            Level.WARNING,
            f"a container reaches the role {container.role} only through "
            "IMDSv1: SDKs that require IMDSv2 get nothing (the token's hop limit)",
            fix,
        )
    if "norole" in (container.outcome, host.outcome):
        return Check(
            NAME,
            Level.WARNING,
            "the metadata service answers, but the instance has no role",
            "attach an IAM role to the notebook instance",
        )
    if host.outcome == "ok" and relayed:
        return Check(
            NAME,
            Level.OK,
            f"the host reaches the role {host.role}; the editor gets it through the relay "
            "(a container's own IMDSv2 token request stops at the bridge: the hop limit)",
        )
    if host.outcome == "ok":
        return Check(
            NAME,
            Level.PROBLEM,
            f"the host reaches the role {host.role}, a container does not "
            f"({container.reason}): IMDSv2's hop limit stops the token at the bridge",
            fix,
        )
    return Check(
        NAME,
        Level.WARNING,
        f"no metadata service at {endpoint}, from the host either ({host.reason}): not an EC2 instance",
    )
