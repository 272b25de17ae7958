#!/bin/bash
# The image's entrypoint (PID 1 is docker's --init, which reaps zombies).
#   no arguments          -> the user's login shell
#   first argument is -X  -> code-server with those arguments
#   anything else         -> run it
# Started as root with SAGECODE_UID/SAGECODE_GID set (a plain rootful engine), it first
# adds that user so files on the host's volumes belong to the host user, then drops to it.
# Before the session starts, the first-start script puts the image's defaults into HOME
# (once per home) as the session's user; its failure never stops the session.
set -eu
FIRST_START=/usr/local/lib/sagecode/first_start.py

add_user() {
  local uid="$1" gid="$2" name="${SAGECODE_USER:-user}"
  local home="${HOME:-/home/$name}"
  getent group "$gid" >/dev/null || groupadd -o -g "$gid" "$name"
  if ! getent passwd "$uid" >/dev/null; then
    useradd -o -u "$uid" -g "$gid" -d "$home" -M -s "${SHELL:-/bin/zsh}" "$name"
  fi
}

mode_of() {
  if [ $# -eq 0 ]; then
    echo shell
  elif [ "${1#-}" != "$1" ]; then
    echo code-server
  else
    echo command
  fi
}

command_for() {
  case "$(mode_of "$@")" in
    shell) set -- "${SHELL:-/bin/zsh}" -l ;;
    code-server) set -- /usr/local/bin/code-server "$@" ;;
  esac
  printf '%s\0' "$@"
}

# mise keeps runtimes and its config in HOME, the persistent home, whatever XDG_* say;
# exported here so code-server, its terminals and plain commands all agree.
mise_env() {
  [ -n "${HOME:-}" ] || return 0
  export MISE_DATA_DIR="${MISE_DATA_DIR:-$HOME/.local/share/mise}"
  export MISE_CONFIG_DIR="${MISE_CONFIG_DIR:-$HOME/.config/mise}"
}

# Runs as the session's user (the "$@" prefix drops privileges when needed).
first_start() {
  local mode="$1"
  shift
  [ -f "$FIRST_START" ] || return 0
  if [ "$mode" = code-server ]; then
    "$@" python3 "$FIRST_START" "$mode" "${ARGS[@]}" || true
  else
    "$@" python3 "$FIRST_START" "$mode" || true
  fi
}

main() {
  local argv=() mode
  ARGS=("$@")
  mise_env
  mode=$(mode_of "$@")
  while IFS= read -r -d '' arg; do argv+=("$arg"); done < <(command_for "$@")
  local uid="${SAGECODE_UID:-0}" gid="${SAGECODE_GID:-0}"
  if [ "$(id -u)" = 0 ] && [ "$uid" != 0 ]; then
    add_user "$uid" "$gid"
    local drop=(setpriv --reuid="$uid" --regid="$gid" --init-groups --)
    first_start "$mode" "${drop[@]}"
    exec "${drop[@]}" "${argv[@]}"
  fi
  first_start "$mode" env
  exec "${argv[@]}"
}

main "$@"
