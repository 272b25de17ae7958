"""``python -m imagebuild``: build (the default), restore, or show the plan.

Errors print as one line with what to do; ``--debug`` shows the traceback too.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from imagebuild import builder, registry, resolve
from imagebuild.config import AWS_CLI_SOURCES, CODE_SERVER_SOURCES, BuildConfig, check, from_env
from imagebuild.console import Console
from imagebuild.engine import Engine
from imagebuild.errors import SagecodeError
from imagebuild.layers import OPTIONAL, ORDER
from imagebuild.manifest import Manifest
from imagebuild.paths import StatePaths
from imagebuild.restore import Rebuild, restore

COMMANDS = ("build", "restore")
EPILOG = """examples:
  python -m imagebuild --code-server latest          build the newest code-server
  python -m imagebuild --code-server 4.139.1 --dry-run   show versions and the Dockerfile
  python -m imagebuild restore                       after a restart: load or rebuild
  python -m imagebuild --base-image local/debian:bookworm --code-server-source npm \\
      --ca-bundle /etc/ssl/certs/ca-certificates.crt   (a machine with no registry access)
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m imagebuild", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Build, cache, save and restore the code-server image for SageMaker notebooks.",
    )
    p.add_argument("command", nargs="?", choices=COMMANDS, default="build",
                   help="build (default) or restore the saved image after a restart")
    p.add_argument("--code-server", metavar="VERSION", help="latest (default) or X.Y.Z")
    p.add_argument("--code-server-source", choices=CODE_SERVER_SOURCES,
                   help="auto (GitHub, then npm; default), github or npm")
    p.add_argument("--base-image", help="image to build from (default ubuntu:22.04)")
    p.add_argument("--without", action="append", default=[], metavar="LAYER",
                   help=f"switch a layer off (repeatable or comma-separated): {', '.join(ORDER)}")
    p.add_argument("--with", dest="with_", action="append", default=[], metavar="LAYER",
                   help=f"switch an optional layer on: {', '.join(sorted(OPTIONAL))}")
    p.add_argument("--aws-cli", metavar="VERSION",
                   help="AWS CLI version: latest (default) or X.Y.Z (v2 needs X.Y.Z)")
    p.add_argument("--aws-cli-source", choices=AWS_CLI_SOURCES,
                   help="pypi (awscli v1, default) or v2 (AWS's signed installer)")
    p.add_argument("--mise", metavar="VERSION", help="mise version (npm): latest (default) or X.Y.Z")
    p.add_argument("--claude-code", metavar="VERSION", help="Claude Code version (npm), default latest")
    p.add_argument("--cline", metavar="VERSION", help="Cline CLI version (npm), default latest")
    p.add_argument("--aws-region", help="Bedrock region written at first start (default us-east-1)")
    p.add_argument("--bedrock-model", help="Bedrock model id written at first start")
    p.add_argument("--trust-ca", action="store_true",
                   help="also install --ca-bundle in the image's trust store (puts it in a layer)")
    p.add_argument("--state-dir", type=Path, help="persistent directory (default ~/SageMaker/.sagecode)")
    p.add_argument("--cache-ref", help="registry reference for the build cache instead of the local one")
    p.add_argument("--cache-cap-mb", type=int, help="cap for the local build cache in MiB (default 6144)")
    p.add_argument("--keep", type=int, help="saved images to keep (default 1)")
    p.add_argument("--ca-bundle", type=Path, help="CA bundle every download in the build trusts")
    p.add_argument("--lock", type=Path, help="rebuild the versions recorded in this manifest/lock")
    p.add_argument("--platform", choices=("amd64", "arm64"), help="target architecture (default: host)")
    p.add_argument("--push", metavar="REPO", help="push the built image to REPO with tags from the lock")
    p.add_argument("--pull", metavar="REF", help="restore: pull REF (tag or digest) and save it, no build")
    p.add_argument("--no-cache", action="store_true", help="ignore the build cache")
    p.add_argument("--no-build", action="store_true", help="restore: fail instead of rebuilding")
    p.add_argument("--dry-run", action="store_true", help="resolve versions, print the plan, build nothing")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and the result")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    return p


def config_from_args(args: argparse.Namespace, base: BuildConfig) -> BuildConfig:
    """Apply command-line flags over the environment's configuration."""
    changes: dict[str, object] = {}
    simple = {"code_server": "code_server", "code_server_source": "code_server_source",
              "base_image": "base_image", "cache_ref": "cache_ref", "cache_cap_mb": "cache_cap_mb",
              "keep": "keep", "ca_bundle": "ca_bundle", "lock": "lock_file", "platform": "platform",
              "aws_cli": "aws_cli", "aws_cli_source": "aws_cli_source", "mise": "mise",
              "claude_code": "claude_code", "cline": "cline", "aws_region": "aws_region",
              "bedrock_model": "bedrock_model"}
    for arg, name in simple.items():
        if getattr(args, arg) is not None:
            changes[name] = getattr(args, arg)
    if args.pull:
        changes["image_ref"] = args.pull
    if args.state_dir is not None:
        changes["state"] = StatePaths(args.state_dir.expanduser())
    off = _names(args.without)
    if off:
        changes["disabled"] = base.disabled | off
    extra = _names(args.with_)
    if extra:
        changes["extra_layers"] = base.extra_layers | extra
    if args.trust_ca:
        changes["trust_ca"] = True
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _names(items: list[str]) -> set[str]:
    return {x.strip() for item in items for x in item.split(",") if x.strip()}


def _rebuild(engine: Engine, console: Console, no_cache: bool) -> Rebuild:
    def run(config: BuildConfig, _old: Optional[Manifest]) -> Manifest:
        if config.image_ref:
            return registry.pull_and_save(config, engine, config.image_ref, console)
        versions = resolve.resolve(config, console)
        return builder.build(builder.plan(config, versions), engine, console, no_cache=no_cache)

    return run


def _build(config: BuildConfig, args: argparse.Namespace, console: Console) -> int:
    if args.push:
        registry.check_repo(args.push)
    versions = resolve.resolve(config, console)
    p = builder.plan(config, versions)
    if args.dry_run:
        console.result(p.manifest().to_json().rstrip())
        console.result(p.definition.dockerfile.rstrip())
        return 0
    engine = Engine()
    saved = builder.build(p, engine, console, no_cache=args.no_cache)
    if args.push:
        refs = registry.publish_tags(args.push, saved)
        builder.push(p, engine, refs, console)
        for ref in refs:
            console.result(f"pushed {ref}")
    console.result(f"{saved.image} ready; saved in {config.state.images} ({saved.saved_as})")
    return 0


def _restore(config: BuildConfig, args: argparse.Namespace, console: Console) -> int:
    engine = Engine()
    if args.pull:
        saved = registry.pull_and_save(config, engine, args.pull, console)
        console.result(f"{saved.image} pulled")
        return 0
    rebuild = None if args.no_build else _rebuild(engine, console, args.no_cache)
    done = restore(config, engine, console, rebuild)
    console.result(f"{done.manifest.image} {done.action}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s" if args.debug else "warning: %(message)s",
    )
    console = Console(quiet=args.quiet)
    try:
        config = config_from_args(args, from_env())
        check(config)
        return (_restore if args.command == "restore" else _build)(config, args, console)
    except SagecodeError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing was replaced", file=sys.stderr)
        return 130
