#!/bin/sh
# Build steps only (mounted from a stage of helpers, never a file of the image): downloads
# a release tarball, checks it against the SHA-256 digest GitHub's API reported for the
# asset ("-" when it reported none), unpacks it to PREFIX.
# usage: fetch-release.sh URL SHA256|- PREFIX
set -eu

main() {
  url="$1" sha256="$2" prefix="$3"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  curl -fsSL --retry 3 --connect-timeout 20 -o "$tmp/release.tgz" "$url"
  check "$sha256" "$tmp/release.tgz" "$url"
  mkdir -p "$prefix"
  tar xzf "$tmp/release.tgz" -C "$prefix" --strip-components=1
}

check() {
  if [ "$1" = - ]; then
    echo "note: GitHub published no digest for $3: not checked" >&2
    return 0
  fi
  got=$(sha256sum "$2" | cut -d' ' -f1)
  if [ "$got" != "$1" ]; then
    echo "error: $3 has SHA-256 $got but GitHub reports $1: refusing it" >&2
    return 1
  fi
}

main "$@"
