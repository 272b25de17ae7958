"""``sagecode doctor``: gather the facts each check in ``runtime.checks`` judges.

Nothing here changes the machine. The engine is asked once (``docker info``); when it
does not answer, the checks that need it are left out and the report says so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

from imagebuild.errors import EngineError
from imagebuild.store import ImageStore
from runtime.checks import (
    Check,
    Level,
    builder_check,
    engine_check,
    engine_down,
    glibc_check,
    jsp_check,
    mode_check,
    space_check,
)
from runtime.config import RuntimeConfig
from runtime.container import Containers
from runtime.credentials import NAME, PROBE, Probe, credentials_check, parse_probe
from runtime.credrelay import Relay, host_source
from runtime.identity import NAME as IDENTITY
from runtime.identity import (
    Identity,
    identity_check,
    not_applicable,
    parse_identity,
    probe_argv,
    relay_applies,
)
from runtime.plan import uses_host_network
from runtime.usermap import UserMapping, user_mapping

PROBE_SECONDS = 60.0  # container start plus the probe's own short timeouts
_VERSION = re.compile(r"^Version:\s*(\S+)", re.MULTILINE)


def run_checks(config: RuntimeConfig, containers: Containers, jupyter_env: Path) -> list[Check]:
    """Every check, in the order a fix would be made."""
    checks = [glibc_check(host_glibc())]
    try:
        info = containers.info()
    except EngineError as exc:
        info = None
        checks.append(engine_down(exc))
    if info is not None:
        checks += [
            engine_check(str(info.get("ServerVersion") or "0")),
            mode_check(info, config.user, config.docker_host),
            check_builder(),
        ]
    checks += [check_space(config), jsp_check(jupyter_env, jupyter_env.is_dir(), jsp_version(jupyter_env))]
    if info is not None:
        checks += check_credentials(config, containers, info)
    return checks


def host_glibc() -> Optional[str]:
    """The host's glibc version (``2.26`` on Amazon Linux 2), or None without glibc."""
    try:
        found = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError):
        return None
    return found.split()[-1] if found else None


def check_builder() -> Check:
    """buildx and the default builder, through the build side's own probe."""
    from imagebuild.engine import Engine  # noqa: PLC0415 - python-on-whales is slow to import

    try:
        caps = Engine().capabilities()
    except EngineError as exc:
        return Check("builder", Level.PROBLEM, exc.what, "install the docker buildx plugin")
    return builder_check(caps.buildx_version, caps.driver, caps.can_export_cache)


def check_space(config: RuntimeConfig) -> Check:
    """Free space where the state lives (its nearest existing folder before the first run)."""
    root = config.state.root
    existing = next(p for p in (root, *root.parents) if p.exists())
    current = ImageStore(config.state.images).current()
    return space_check(root, shutil.disk_usage(existing).free, current.tar_bytes if current else None)


def jsp_version(env: Path) -> Optional[str]:
    """jupyter-server-proxy's version from its dist-info in ``env`` (not imported: other env)."""
    for meta in sorted(env.glob("lib/python3*/site-packages/jupyter_server_proxy-*.dist-info/METADATA")):
        found = _VERSION.search(meta.read_text(errors="replace"))
        if found:
            return found.group(1)
    return None


def check_credentials(config: RuntimeConfig, containers: Containers, info: dict[str, Any]) -> list[Check]:
    """The instance's credentials from a container like the editor's, then the identity it gets."""
    current = ImageStore(config.state.images).current()
    ref = config.image or (current.image if current else "")
    if not ref or not containers.image_id(ref):
        missing = f"{ref} is not in the engine" if ref else "no image has been built"
        fix = "build or load it (python -m imagebuild [restore]), then run doctor again"
        return [Check(name, Level.WARNING, f"not checked: {missing}", fix) for name in (NAME, IDENTITY)]
    mapping = user_mapping(info, config.user, config.docker_host)
    relayed = relay_applies(config, mapping)
    imds = check_imds(config, containers, mapping, ref, relayed)
    if not relayed:
        return [imds, not_applicable(config, mapping)]
    return [imds, check_identity(config, containers, mapping, ref)]


def check_imds(
    config: RuntimeConfig, containers: Containers, mapping: UserMapping, ref: str, relayed: bool
) -> Check:
    """Run the IMDS probe in a container like the editor's; on the host too when that fails."""
    network = ["--network", "host"] if uses_host_network(config, mapping) else []
    name = f"{config.container_name}-doctor-{os.getpid()}"
    argv = ["run", "--rm", "--name", name, *network, "--entrypoint", "python3", ref,
            "-c", PROBE, config.imds_endpoint]  # fmt: skip
    container = _probe_in(containers, argv, name)
    host = None if container.outcome == "ok" else _probe_on_host(config.imds_endpoint)
    return credentials_check(container, host, config.imds_endpoint, str(config.state.home), relayed)


def check_identity(config: RuntimeConfig, containers: Containers, mapping: UserMapping, ref: str) -> Check:
    """STS GetCallerIdentity from a container of ``ref``, through a relay started as the wrapper does."""
    try:
        source, region = host_source(config.credentials_refresh)
    except Exception as exc:  # a broken profile or config file: botocore's own message
        return Check(IDENTITY, Level.PROBLEM, f"the host's AWS credentials do not resolve: {exc!s:.160}",
                     "fix ~/.aws/config or the AWS_* variables on the host")  # fmt: skip
    if source is None:
        return Check(IDENTITY, Level.WARNING, "the host has no AWS credentials to relay",
                     "attach an IAM role to the notebook instance")  # fmt: skip
    relay = Relay(config.state.run, source, region)
    name = f"{config.container_name}-doctor-sts-{os.getpid()}"
    try:
        found = _identity_in(containers, probe_argv(config, mapping, ref, relay.mount, name), name)
    finally:
        relay.close()
    return identity_check(found)


def _probe_in(containers: Containers, argv: list[str], name: str) -> Probe:
    try:
        done = containers.capture(argv, PROBE_SECONDS)
    except EngineError as exc:
        containers.remove(name)
        return Probe("fail", reason=exc.what)
    return parse_probe(done.stdout, done.stderr)


def _identity_in(containers: Containers, argv: list[str], name: str) -> Identity:
    try:
        done = containers.capture(argv, PROBE_SECONDS)
    except EngineError as exc:
        containers.remove(name)
        return Identity(reason=exc.what)
    return parse_identity(done.stdout, done.stderr)


def _probe_on_host(endpoint: str) -> Probe:
    command = [sys.executable, "-I", "-c", PROBE, endpoint]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PROBE_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        return Probe("fail", reason=f"no answer in {PROBE_SECONDS:.0f} s")
    return parse_probe(done.stdout, done.stderr)
