#!/bin/sh
# Builder stage only: the AWS CLI v2 from AWS's installer zip, installed only when its
# PGP signature is good and made by the key with FINGERPRINT (AWS CLI Team), from KEY.
# usage: install-awscli-v2.sh URL KEY FINGERPRINT PREFIX
set -eu

main() {
  url="$1" key="$2" fingerprint="$3" prefix="$4"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  curl -fsSL --retry 3 --connect-timeout 20 -o "$tmp/awscli.zip" "$url"
  curl -fsSL --retry 3 --connect-timeout 20 -o "$tmp/awscli.zip.sig" "$url.sig"
  verify "$tmp" "$key" "$fingerprint"
  unzip -q "$tmp/awscli.zip" -d "$tmp"
  "$tmp/aws/install" --install-dir "$prefix/dist" --bin-dir "$prefix/bin"
}

# gpg's status lines say which primary key made a good signature (last field of VALIDSIG).
verify() {
  GNUPGHOME="$1/gnupg"
  export GNUPGHOME
  mkdir -m 700 "$GNUPGHOME"
  gpg --batch --quiet --import "$2" 2>/dev/null
  signer=$(gpg --batch --status-fd 1 --verify "$1/awscli.zip.sig" "$1/awscli.zip" 2>/dev/null \
    | awk '$2 == "VALIDSIG" { print $NF }') || true
  gpgconf --kill all 2>/dev/null || true
  if [ "$signer" != "$3" ]; then
    echo "error: the AWS CLI installer's signature is not a good one by key $3: refusing it" >&2
    return 1
  fi
}

main "$@"
