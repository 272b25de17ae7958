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

# npm tried up to three times: right after a release a registry's CDN can serve a package
# list that lacks a dependency published minutes earlier (ETARGET), and npm retries only
# dropped connections. Wraps the npm of the step's own commands (not scripts they run).
npm() {
  _sagecode_try=1
  while :; do
    command npm "$@" && return 0
    _sagecode_rc=$?
    [ "$_sagecode_try" -lt 3 ] || return "$_sagecode_rc"
    _sagecode_wait=$((_sagecode_try * ${SAGECODE_NPM_RETRY_S:-10}))
    echo "npm exited with $_sagecode_rc; trying again in $_sagecode_wait s" >&2
    sleep "$_sagecode_wait"
    _sagecode_try=$((_sagecode_try + 1))
  done
}
