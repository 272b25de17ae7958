#!/bin/sh
# Installs Debian/Ubuntu packages for one build step and leaves no package lists or apt
# caches behind. SAGECODE_APT_MIRROR (from the build's secret env) replaces the archive for
# this step only; the image keeps its stock sources.
# The packages' docs (but their copyright files), man and info pages and translations are
# not unpacked, as in Ubuntu's minimal images: these options are for this step only, so a
# user's own `apt install` in the container gets them.
set -eu
export DEBIAN_FRONTEND=noninteractive

main() {
  opts="-o Acquire::Retries=3"
  opts="$opts -o DPkg::Options::=--path-exclude=/usr/share/doc/*"
  opts="$opts -o DPkg::Options::=--path-include=/usr/share/doc/*/copyright"
  opts="$opts -o DPkg::Options::=--path-exclude=/usr/share/man/*"
  opts="$opts -o DPkg::Options::=--path-exclude=/usr/share/info/*"
  opts="$opts -o DPkg::Options::=--path-exclude=/usr/share/locale/*/LC_MESSAGES/*.mo"
  if [ -n "${SSL_CERT_FILE:-}" ]; then
    opts="$opts -o Acquire::https::CAInfo=$SSL_CERT_FILE"
  fi
  if [ -n "${SAGECODE_APT_MIRROR:-}" ]; then
    use_mirror "$SAGECODE_APT_MIRROR"
  fi
  set -f  # opts is a list of words on purpose, and its patterns are dpkg's, not the shell's
  # shellcheck disable=SC2086
  apt-get $opts update -qq
  # shellcheck disable=SC2086
  apt-get $opts install -y -qq --no-install-recommends "$@" >/dev/null
  set +f
  restore_sources
  rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /var/cache/apt/*.bin
}

# Point every source at the mirror, keeping the originals to put back afterwards.
use_mirror() {
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*; do
    [ -f "$f" ] || continue
    cp "$f" "$f.sagecode-orig"
    sed -i -E "s#https?://[^ ]+/(debian|ubuntu)/?#$1#g" "$f"
  done
}

restore_sources() {
  for orig in /etc/apt/sources.list.sagecode-orig /etc/apt/sources.list.d/*.sagecode-orig; do
    [ -f "$orig" ] || continue
    mv "$orig" "${orig%.sagecode-orig}"
  done
}

main "$@"
