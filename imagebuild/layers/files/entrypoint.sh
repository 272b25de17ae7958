#!/bin/bash
# The image's entrypoint (PID 1 is docker's --init, which reaps zombies).
#   no arguments          -> the user's login shell
#   first argument is -X  -> code-server with those arguments
#   anything else         -> run it
# Started as root with SAGECODE_UID/SAGECODE_GID set (a plain rootful engine), it first
# adds that user so files on the host's volumes belong to the host user, then drops to it.
set -eu

add_user() {
  local uid="$1" gid="$2" name="${SAGECODE_USER:-user}"
  local home="${HOME:-/home/$name}"
  getent group "$gid" >/dev/null || groupadd -o -g "$gid" "$name"
  if ! getent passwd "$uid" >/dev/null; then
    useradd -o -u "$uid" -g "$gid" -d "$home" -M -s "${SHELL:-/bin/zsh}" "$name"
  fi
}

command_for() {
  if [ $# -eq 0 ]; then
    set -- "${SHELL:-/bin/zsh}" -l
  elif [ "${1#-}" != "$1" ]; then
    set -- /usr/local/bin/code-server "$@"
  fi
  printf '%s\0' "$@"
}

main() {
  local argv=()
  while IFS= read -r -d '' arg; do argv+=("$arg"); done < <(command_for "$@")
  local uid="${SAGECODE_UID:-0}" gid="${SAGECODE_GID:-0}"
  if [ "$(id -u)" = 0 ] && [ "$uid" != 0 ]; then
    add_user "$uid" "$gid"
    exec setpriv --reuid="$uid" --regid="$gid" --init-groups -- "${argv[@]}"
  fi
  exec "${argv[@]}"
}

main "$@"
