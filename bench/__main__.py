"""``python -m bench [image|restart|proxy|build|release|registry|memory|all]``: benchmarks, a Markdown report.

Needs root and ``docker-engine.sh`` (it wipes the engine between runs, as an instance
restart does): run it on a machine where nothing else uses the engine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench import build, image, memory, proxy, release, restart
from bench.common import ROOT, BenchError, Row, machine, say, table

PARTS = ("image", "restart", "proxy", "build", "release", "registry")  # "all"; memory only by name
DEFAULT_STATE = Path("/var/tmp/sagecode-bench/full")  # noqa: S108 (root-only bench machine)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="*", default=["all"],
                        choices=[*PARTS, "memory", "all"])
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE,
                        help=f"state folder holding the saved image to restore (default {DEFAULT_STATE})")
    parser.add_argument("--rounds", type=int, default=3, help="repetitions of each measure (default 3)")
    parser.add_argument("--bumps", type=int, default=5, help="code-server version bumps (default 5)")
    parser.add_argument("--layers", choices=["code-server", "all"], default="code-server",
                        help="layer set of the build benchmark (default base,node,code-server,entrypoint)")
    parser.add_argument("--limit-gb", type=float, default=8.0,
                        help="memory: stop a build whose engine passes this (default 8)")
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts",
                        help="folder for the report (default artifacts/)")
    args = parser.parse_args()
    what = set(PARTS) if "all" in args.what else set(args.what)
    if args.rounds < 3:
        parser.error("--rounds must be at least 3 (medians of fewer runs mean little)")
    rows: list[Row] = []
    notes: list[str] = []
    started = time.monotonic()
    try:
        if "image" in what:
            manifest = restart.current(args.state)
            restart.restore(args.state)  # the image must be in the engine to be measured
            say("image size and wrapper start-up")
            sized, parts = image.size(manifest)
            rows += sized
            notes += ["Largest parts of the image (uncompressed):", *parts]
            rows.append(image.startup())
        if "restart" in what:
            rows += restart.bench(args.state, args.rounds)
        if "proxy" in what:
            rows += proxy.bench(args.state, args.rounds)
        bump = build.CODE_SERVER_ALL if args.layers == "all" else build.CODE_SERVER
        if "build" in what:
            rows += build.bench(args.rounds, args.bumps, bump)
        if "release" in what:
            rows += release.bench(args.state, args.rounds, args.bumps)
        if "memory" in what:
            rows += memory.bench(args.rounds, args.limit_gb)
        if "registry" in what:
            with build.local_registry() as registry:
                rows += build.bench(args.rounds, args.rounds, bump, f"{registry}/sagecode-cache:bench")
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    report = "\n".join([
        f"# sagecode benchmarks ({machine()})", "",
        f"`python -m bench {' '.join(sorted(what))} --rounds {args.rounds}{_options(args, what)}`, "
        f"{(time.monotonic() - started) / 60:.0f} min.", "",
        table(rows), "", *notes, "",
    ])  # fmt: skip
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.md"
    path.write_text(report)
    say(f"report written to {path}")
    return 0


def _options(args: argparse.Namespace, what: set[str]) -> str:
    """The options besides --rounds that shaped this run's figures."""
    shaped = what & {"build", "release", "registry"}
    options = f" --bumps {args.bumps}" if shaped - {"registry"} else ""
    return options + (f" --layers {args.layers}" if shaped & {"build", "registry"} else "")


if __name__ == "__main__":
    sys.exit(main())
