"""Whether the editor gets an AWS identity: STS GetCallerIdentity from a container, through the relay.

``doctor`` starts a relay as the wrapper does, then runs ``files/sts_probe.py`` in a
throwaway container of the editor's image set up like the editor: the relay's folder and
forwarder, the region, the proxies and any ``AWS_ENDPOINT_URL[_STS]`` override, the
editor's user. The probe prints one line (never a key); here it is judged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runtime.checks import REMAP_FIX, Check, Level
from runtime.config import RuntimeConfig
from runtime.credrelay import CONTAINER_DIR, CONTAINER_FORWARDER, PORT, SOCKET_NAME, RelayMount, user_flags
from runtime.plan import HostFacts, credential_flags, relay_opens, uses_host_network
from runtime.usermap import UserMapping

NAME = "AWS identity"
PROBE = Path(__file__).parent / "files" / "sts_probe.py"
# The forwarder in the background, then the probe (which waits for it): one container.
_START = f'python3 {CONTAINER_FORWARDER} {PORT} {CONTAINER_DIR / SOCKET_NAME} & exec python3 -c "$0"'


@dataclass(frozen=True)
class Identity:
    """What the probe got: the account and ARN, or why not."""

    account: str = ""
    arn: str = ""
    reason: str = ""


def parse_identity(stdout: str, stderr: str = "") -> Identity:
    """The probe's ``ok ACCOUNT ARN`` / ``fail REASON`` line; anything else is a failure."""
    words = stdout.strip().split(" ", 2)
    if words[0] == "ok" and len(words) == 3:
        return Identity(words[1], words[2])
    if words[0] == "fail":
        return Identity(reason=" ".join(words[1:]))
    lines = [line.strip() for line in (stderr or stdout).splitlines() if line.strip()]
    return Identity(reason=lines[-1] if lines else "the probe printed nothing")


def relay_applies(config: RuntimeConfig, mapping: UserMapping) -> bool:
    """Whether the wrapper relays credentials to the editor on this engine (it can open the socket)."""
    return config.credentials and not uses_host_network(config, mapping) and relay_opens(config, mapping)


def not_applicable(config: RuntimeConfig, mapping: UserMapping) -> Check:
    """Why the identity was not checked through the relay, when ``relay_applies`` is false."""
    if not config.credentials:
        return Check(NAME, Level.WARNING, "not checked: SAGECODE_CREDENTIALS=off, the editor gets none")
    if uses_host_network(config, mapping):
        return Check(NAME, Level.OK, "no relay needed: with host networking the editor asks IMDS itself")
    return Check(
        NAME,
        Level.PROBLEM,
        f"userns-remap maps container root to uid {mapping.owner_uid}, not to you "
        f"(uid {config.user.uid}): the editor cannot open the credential relay",
        REMAP_FIX,
    )


def probe_argv(
    config: RuntimeConfig, mapping: UserMapping, ref: str, mount: RelayMount, name: str
) -> list[str]:
    """``run ...`` of the probe in the editor's image, wired like the editor."""
    env = [flag for key, value in config.passthrough_env for flag in ("--env", f"{key}={value}")]
    return ["run", "--rm", "--name", name, *user_flags(mapping.env), *env,
            *credential_flags(config, HostFacts(credentials=mount)),
            "--entrypoint", "sh", ref, "-c", _START, PROBE.read_text()]  # fmt: skip


def identity_check(found: Identity) -> Check:
    """The verdict, with the one thing to try next when there is no identity."""
    if found.arn:
        detail = f"a container gets {found.arn} (account {found.account}) through the relay"
        return Check(NAME, Level.OK, detail)
    if found.reason.startswith("cannot reach STS"):
        fix = "give the instance a route to STS (internet, proxy, VPC endpoint) or set AWS_ENDPOINT_URL_STS"
    elif found.reason.startswith("STS at"):
        fix = "check the notebook instance's IAM role (attached, not deleted) and the host's clock"
    else:
        fix = "run sagecode logs for the relay's warnings"
    return Check(NAME, Level.PROBLEM, f"a container gets no identity: {found.reason}", fix)
