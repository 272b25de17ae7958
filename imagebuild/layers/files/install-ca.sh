#!/bin/sh
# Builder stage only, for --trust-ca: adds the build's CA bundle (a secret mount) to the
# system trust store; the store is then copied into the image, so the bundle is in a layer.
# usage: install-ca.sh SHA256 [BUNDLE] [DEST]
# SAGECODE_SYSTEM_BUNDLE and SAGECODE_UPDATE_CA override the store's bundle and its updater.
set -eu
SYSTEM_BUNDLE="${SAGECODE_SYSTEM_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
UPDATE_CA="${SAGECODE_UPDATE_CA:-update-ca-certificates}"

main() {
  sha256="$1" bundle="${2:-/run/secrets/ca-bundle}" dest="${3:-/usr/local/share/ca-certificates/sagecode}"
  if [ ! -s "$bundle" ]; then
    echo "error: --trust-ca needs the CA bundle (--ca-bundle FILE)" >&2
    return 1
  fi
  # BuildKit cannot see a secret change, so the bundle's digest is in the build text:
  # a new bundle is a new step, and this one refuses a bundle that is not the planned one.
  got=$(sha256sum "$bundle" | cut -d' ' -f1)
  if [ "$got" != "$sha256" ]; then
    echo "error: the CA bundle changed after the build was planned; run the build again" >&2
    return 1
  fi
  mkdir -p "$dest"
  split_new "$SYSTEM_BUNDLE" "$bundle" "$dest"
  "$UPDATE_CA" >/dev/null
}

# One file per certificate of BUNDLE that the system store does not hold already.
split_new() {
  awk -v dest="$3" '
    /-----BEGIN CERTIFICATE-----/ { pem = ""; inside = 1 }
    inside { pem = pem $0 "\n" }
    /-----END CERTIFICATE-----/ && inside {
      inside = 0
      if (FILENAME == ARGV[1]) { known[pem] = 1; next }
      if (!(pem in known)) { n++; out = sprintf("%s/cert-%03d.crt", dest, n); printf "%s", pem > out; close(out) }
    }
  ' "$1" "$2"
}

main "$@"
