"""code-server bumps through its GitHub release path, against cold builds on the same path.

An instance that reaches GitHub (``--code-server-source auto``, the default) takes
code-server from the release tarball: a download, a digest check, an unpack and the trim,
with no npm install and no compile. GitHub is unreachable here, so a fake GitHub on the
engine's bridge serves tarballs made from the saved bench image's npm-built code-server
(``bench/fakegithub.py``), one per version, each labelled with its version in its
package.json. What this leaves out is GitHub's own download time (a ~130 MB tarball).

- **seed**: the engine wiped, a fresh state folder, v0 built with the cache exported;
- **bump after a restart** (ours): the engine wiped, the state folder kept, the next
  version built; through v1..vN;
- **cold** (the predecessor's rebuild after a restart): the engine wiped, the same version
  built with ``--no-cache`` in a throwaway state folder.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from bench import fakegithub, restart
from bench.build import CODE_SERVER_GITHUB, build, cold_builds, cycle, newest, versions
from bench.common import Row, clean, say, wipe_engine


def bench(state: Path, rounds: int, bumps: int) -> list[Row]:
    """Seed, ``bumps`` bumps after wipes, ``rounds`` cold builds, all from the fake GitHub."""
    manifest = restart.current(state)
    restart.restore(state)  # the npm-built code-server the tarballs are made of
    chain = newest(versions("code-server"), bumps + 1)
    say(f"release path, code-server {' -> '.join(chain)} (tarballs from {manifest.image})")
    folder = Path(tempfile.mkdtemp(prefix="sagecode-bench-release-", dir="/var/tmp"))
    scratch = folder / "state"
    try:
        tree = fakegithub.unpack_tree(manifest.image, folder)
        tarballs = [fakegithub.release_tarball(tree, version, folder) for version in chain]
        clean(tree)
        with fakegithub.serve(folder / "www") as fake:
            for version, tarball in zip(chain, tarballs):
                fake.publish(version, tarball)
            wipe_engine()
            say(f"seed: {chain[0]} on a wiped engine, cache exported")
            seed = build(scratch, CODE_SERVER_GITHUB, chain[0], extra_env=fake.env)
            bumped = []
            for version in chain[1:]:
                wipe_engine()
                bumped.append(build(scratch, CODE_SERVER_GITHUB, version, extra_env=fake.env))
                say(f"bump to {version} after a wipe (release path): {bumped[-1]:.0f} s")
            cold = cold_builds(CODE_SERVER_GITHUB, cycle(chain[1:], rounds), extra_env=fake.env)
        size = tarballs[0].stat().st_size
    finally:
        clean(folder)
    fifth = statistics.median(cold) * 0.2
    return [
        Row(f"rebuild after a code-server bump from its GitHub release (fake GitHub), engine wiped, "
            f"cache dir kept ({len(bumped)} bumps)", bumped, baseline=cold,
            target=f"<= 0.2x ({fifth:.0f} s)", met=statistics.median(bumped) <= fifth),
        Row("  cold build of the same versions from the release, --no-cache (predecessor)", cold),
        Row("  first build on a wiped engine, cache exported (seed)", [seed]),
        Row("  release tarball served", [float(size)], unit="B"),
    ]
