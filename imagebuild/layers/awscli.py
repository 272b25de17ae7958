"""The AWS CLI in its own prefix, ``/opt/awscli``, with ``aws`` on PATH.

Two sources: ``pypi`` (the default) installs ``awscli`` (v1) into a venv, so it comes
through any pip mirror; ``v2`` is AWS's official installer zip, installed only when its
PGP signature is good and made by AWS's published key (shipped in ``files/``). The v2
site is not reachable from no-internet instances (nor from CI), so only its rendered
steps and the verification script are tested here, against a local fixture.
"""

from __future__ import annotations

from imagebuild.errors import UsageError
from imagebuild.layers.model import Copy, File, Layer, Link, Stage, Want

PREFIX = "/opt/awscli"
SOURCES = ("pypi", "v2")
V2_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}
V2_URL = "https://awscli.amazonaws.com/awscli-exe-linux-{arch}-{version}.zip"
# The AWS CLI Team key (aws-cli@amazon.com) as AWS publishes it; its self-signature
# runs to 2027-07-01, when AWS publishes it with a new expiry date.
V2_KEY = File("aws-cli-v2.asc", "/usr/local/share/sagecode-build/aws-cli-v2.asc")
V2_FINGERPRINT = "FB5DB77FD5C118B80511ADA8A6310ACC4672475C"


def wants(spec: str, source: str) -> tuple[Want, ...]:
    """PyPI versions resolve like any other; v2 has no index reachable here: exact only."""
    if source == "pypi":
        return (Want("awscli", "pypi", "awscli", spec),)
    if source == "v2":
        return (Want("awscli", "v2", "awscli-exe-linux", spec),)
    raise UsageError(f"unknown AWS CLI source {source!r}", f"use {' or '.join(SOURCES)}")


def v2_url(version: str, platform: str) -> str:
    """The versioned installer zip for ``platform`` (Docker's architecture name)."""
    if platform not in V2_ARCH:
        raise UsageError(f"the AWS CLI v2 has no installer for linux/{platform}", "build for amd64 or arm64")
    return V2_URL.format(arch=V2_ARCH[platform], version=version)


# botocore reads its service models as .json or .json.gz (its loader says which it knows):
# gzipped, the models take 25 MB instead of 121 MB, and a command starts as fast.
GZIP_MODELS = (
    f"for loader in $(find {PREFIX}/lib -path '*/botocore/loaders.py'); do"
    " if grep -q \"'.json.gz'\" \"$loader\"; then"
    " find \"${loader%/loaders.py}/data\" -name '*.json' -exec gzip -9n {} +; fi; done"
)


def pypi_stage(version: str) -> Stage:
    """awscli in a venv of the base image's python3 (the same interpreter at run time)."""
    return Stage(
        name="awscli",
        run=(
            f"python3 -m venv {PREFIX} &&"
            f"\n{PREFIX}/bin/pip install -q --no-cache-dir --disable-pip-version-check awscli=={version} &&"
            f"\n{PREFIX}/bin/pip uninstall -q -y pip &&"
            f"\n{GZIP_MODELS}",
        ),
    )


def v2_stage(version: str, platform: str) -> Stage:
    """The installer zip, its signature checked with gpg (a builder-only tool)."""
    return Stage(
        name="awscli",
        build_tools=("gnupg",),
        files=(File("install-awscli-v2.sh", "/usr/local/bin/install-awscli-v2", 0o755), V2_KEY),
        run=(f"install-awscli-v2 {v2_url(version, platform)} {V2_KEY.dest} {V2_FINGERPRINT} {PREFIX}",),
    )


def layer(version: str, source: str, platform: str) -> Layer:
    """The AWS CLI ``version`` from ``source``."""
    if source not in SOURCES:
        raise UsageError(f"unknown AWS CLI source {source!r}", f"use {' or '.join(SOURCES)}")
    stage = pypi_stage(version) if source == "pypi" else v2_stage(version, platform)
    return Layer(
        name="awscli",
        summary=f"AWS CLI from {source}",
        version=version,
        stages=(stage,),
        copies=(Copy("awscli", PREFIX, PREFIX),),
        links=tuple(Link(f"/usr/local/bin/{c}", f"{PREFIX}/bin/{c}") for c in ("aws", "aws_completer")),
        verify=(
            f"aws --version 2>&1 | grep -q '^aws-cli/{version} '",
            # reads a service model (gzipped on the PyPI path)
            "aws ec2 run-instances --generate-cli-skeleton | grep -q InstanceType",
            # `aws ... help` renders its man page with mandoc (from the base layer)
            "aws s3 ls help | grep -q 'List S3 objects'",
        ),
    )
