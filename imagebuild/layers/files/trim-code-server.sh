#!/bin/sh
# Builder stage only: removes from an npm-built code-server what it never uses at run
# time on this platform: node-gyp's intermediate objects (the .node modules stay) and the
# binaries other operating systems and architectures would need. About a quarter of it.
# usage: trim-code-server.sh PREFIX [ARCH]   (ARCH as node names it: x64, arm64)
set -eu

main() {
  prefix="$1" arch="${2:-$(node -p process.arch)}"
  before=$(du -sk "$prefix" | cut -f1)
  build_leftovers "$prefix"
  foreign_binaries "$prefix" "$arch"
  after=$(du -sk "$prefix" | cut -f1)
  echo "trimmed code-server from $((before / 1024)) MiB to $((after / 1024)) MiB"
}

build_leftovers() {
  find "$1" -type d -path '*/build/*' \( -name obj.target -o -name obj -o -name .deps \) \
    -prune -exec rm -rf {} +
  find "$1" -type f -path '*/build/*' \( -name '*.a' -o -name '*.o' -o -name Makefile -o -name '*.mk' \) \
    -exec rm -f {} +
}

# Per-platform folders (prebuilds/darwin-x64, bin/win32-arm64, bin/arm64, ...) other
# than linux-ARCH, and Windows executables and libraries.
foreign_binaries() {
  find "$1" -type d \( -path '*/prebuilds/*' -o -path '*/bin/*' \) -prune \
    \( -regex '.*/\(darwin\|win32\|linux\|freebsd\|openbsd\|sunos\|aix\|android\)-[a-z0-9]+\(-[a-z0-9]+\)?' \
       -o -regex '.*/bin/\(x64\|arm64\|ia32\)' \) \
    ! -name "linux-$2" ! -name "linux-$2-gnu" ! -name "$2" -exec rm -rf {} +
  find "$1" -type f \( -name '*.exe' -o -name '*.dll' \) -path '*/node_modules/*' -exec rm -f {} +
}

main "$@"
