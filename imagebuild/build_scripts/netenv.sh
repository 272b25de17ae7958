# shellcheck shell=sh
# Sourced by every build step. Makes downloads trust the CA bundle and use the mirrors
# and proxies the user gave, all from secret mounts, so none of it is stored in a layer.

if [ -s /run/secrets/ca-bundle ]; then
  export SSL_CERT_FILE=/run/secrets/ca-bundle
  export CURL_CA_BUNDLE=/run/secrets/ca-bundle
  export REQUESTS_CA_BUNDLE=/run/secrets/ca-bundle
  export PIP_CERT=/run/secrets/ca-bundle
  export NODE_EXTRA_CA_CERTS=/run/secrets/ca-bundle
  export npm_config_cafile=/run/secrets/ca-bundle
  export AWS_CA_BUNDLE=/run/secrets/ca-bundle
fi
# build-env holds `export NAME='value'` lines written by imagebuild (registries, mirrors).
if [ -s /run/secrets/build-env ]; then
  # shellcheck source=/dev/null
  . /run/secrets/build-env
fi
