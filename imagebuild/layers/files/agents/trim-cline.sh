#!/bin/sh
# Builder stage only: the `cline` command runs Cline's native binary (bin/.cline); the
# JavaScript packages the npm package also depends on (about 280 MB, thousands of files)
# serve programs that embed Cline, not the command. They are removed only if the command
# still answers without them; otherwise they stay and the build says so.
# usage: trim-cline.sh PREFIX
set -eu

prefix="$1"
pkg="$prefix/lib/node_modules/cline"
[ -d "$pkg/node_modules" ] || exit 0
mv "$pkg/node_modules" "$pkg/node_modules.trim"
if "$prefix/bin/cline" --version >/dev/null 2>&1; then
  rm -rf "$pkg/node_modules.trim"
  echo "trimmed Cline's embedding packages"
else
  mv "$pkg/node_modules.trim" "$pkg/node_modules"
  echo "Cline's command needs its packages: kept them"
fi
