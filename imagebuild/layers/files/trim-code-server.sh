#!/bin/sh
# Build steps only (mounted from a stage of helpers, never a file of the image): removes
# from an npm-built code-server what it never uses at run time on this platform:
# node-gyp's intermediate objects (the .node modules stay), the
# binaries other operating systems and architectures would need, and files nothing loads
# (source maps, packages' type declarations and markdown). About a quarter of it, and
# thousands of files every restart would otherwise write.
# usage: trim-code-server.sh PREFIX [ARCH]   (ARCH as node names it: x64, arm64)
set -eu

main() {
  prefix="$1" arch="${2:-$(node -p process.arch)}"
  before=$(du -sk "$prefix" | cut -f1)
  build_leftovers "$prefix"
  foreign_binaries "$prefix" "$arch"
  unread_files "$prefix"
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

# Source maps (a browser fetches one only with its developer tools open) anywhere; in the
# npm packages only (not VS Code's own files, nor an extension's README, which the
# Extensions view shows): type declarations, except TypeScript's own lib, which its
# language service reads, and markdown other than licences and notices.
unread_files() {
  root="$1"
  [ -d "$1/lib/node_modules/code-server" ] && root="$1/lib/node_modules/code-server"
  find "$root" -type f -name '*.map' -exec rm -f {} +
  find "$root" -type f -path "$root/*node_modules/*" \
    \( \( \( -name '*.d.ts' -o -name '*.d.cts' -o -name '*.d.mts' \) ! -path '*/node_modules/typescript/lib/*' \) \
       -o \( -iname '*.md' ! -iname 'licen[cs]e*' ! -iname 'notice*' \) \) -exec rm -f {} +
}

main "$@"
