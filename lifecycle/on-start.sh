#!/bin/bash
# sagecode's lifecycle hook (OnStart; on-create.sh differs only in HOOK). Run as root, it works
# as SAGECODE_USER: installs sagecode once into ~/SageMaker/.sagecode/venv, then runs `python -m
# runtime.lifecycle` (launcher card now, image in the background). Returns in seconds; exits 0
# even on failure, which would stop the instance. Settings (export them here): README.md.
HOOK=start
set -uo pipefail

run() {  # the command, or with --dry-run only its words
  if [ -n "$DRY" ]; then printf '+'; printf ' %q' "$@"; printf '\n'; else "$@"; fi
}

say() {  # fd 3 is the hook's stdout (CloudWatch), also while the rest goes to the log
  printf 'sagecode %s: %s\n' "$HOOK" "$*" >&3
  [ -n "$DRY" ] || printf '%s sagecode %s: %s\n' "$(date -u +%FT%TZ)" "$HOOK" "$*" >>"$LOG"
}

locate() {
  U=${SAGECODE_USER:-ec2-user}
  H=${SAGECODE_HOME:-$(getent passwd "$U" | cut -d: -f6)}
  [ -n "$H" ] || { echo "sagecode $HOOK: no user $U (set SAGECODE_USER)"; return 1; }
  STATE=${SAGECODE_STATE_DIR:-$H/SageMaker/.sagecode}
  VENV=$STATE/venv WH=$STATE/wheelhouse LOG=$STATE/logs/lifecycle.log
  AS=(env "HOME=$H")
  [ "$(id -un)" = "$U" ] || AS=(runuser -u "$U" -- "${AS[@]}")
}

pick_python() {  # conda's: Amazon Linux 2's own python3 is 3.7, too old
  local c
  for c in "${SAGECODE_PYTHON:-}" "$H/anaconda3/bin/python3" \
    "${SAGECODE_JUPYTER_ENV:-$H/anaconda3/envs/JupyterSystemEnv}/bin/python3" /usr/bin/python3; do
    if [ -x "$c" ] && "${AS[@]}" "$c" -c 'import sys; sys.exit(sys.version_info < (3, 9))'; then
      echo "$c"; return 0
    fi
  done 2>/dev/null
  return 1
}

healthy() {
  [ -f "$VENV/.complete" ] && "${AS[@]}" "$VENV/bin/python" -I -c 'import runtime.lifecycle' 2>/dev/null
}

fill_wheelhouse() {  # sagecode, the card's glue (jupyter/) and every dependency
  local src=${SAGECODE_SOURCE:-$H/SageMaker/sagecode} glue
  case $src in
    *://*) glue="$src#subdirectory=jupyter" ;;
    *) glue="$src/jupyter"
      [ -d "$src" ] || { say "no sagecode in $src: clone it there or set SAGECODE_SOURCE"; return 1; } ;;
  esac
  run "${AS[@]}" timeout 150 "$VENV/bin/pip" wheel -q -w "$WH" "$src" "$glue"
}

offline() { run "${AS[@]}" timeout 60 "$VENV/bin/pip" install -q --no-index --find-links "$WH" sagecode; }

install() {
  local py
  py=$(pick_python) || { say "no python >= 3.9 found: set SAGECODE_PYTHON"; return 1; }
  run "${AS[@]}" rm -rf "$VENV" || return 1
  run "${AS[@]}" timeout 60 "$py" -m venv "$VENV" || return 1
  if ! compgen -G "$WH/sagecode-*.whl" >/dev/null || ! offline; then
    fill_wheelhouse || return 1
    offline || return 1
  fi
  run "${AS[@]}" touch "$VENV/.complete"
}

installed() {  # SageMaker runs both hooks on the first boot: one installs, the other waits
  if [ -z "$DRY" ]; then
    exec 9>>"$STATE/run/install.lock"
    flock -w 200 9 || { say "the other hook is still installing"; return 1; }
  fi
  healthy && return 0
  say "installing sagecode into $VENV"
  if [ -n "$DRY" ]; then install; else install >>"$LOG" 2>&1; fi
}

engine_data() {  # opt-in (SAGECODE_ENGINE_DATA=volume), as root, before the engine is used
  local cmd=(timeout 120 "$VENV/bin/python" -I -m runtime.enginedata on --volume "$STATE/engine")
  [ "${SAGECODE_ENGINE_DATA:-}" = volume ] || return 0
  if [ -n "$DRY" ]; then run "${cmd[@]}"; return 0; fi
  "${cmd[@]}" >>"$LOG" 2>&1 || say "the engine's data stays on the root volume; see $LOG"
}

main() {
  DRY=
  exec 3>&1
  case ${1:-} in --dry-run) DRY=1 ;; '') ;; *) echo "usage: $0 [--dry-run]" >&2; return 2 ;; esac
  locate || return 0
  run "${AS[@]}" mkdir -p "$STATE/logs" "$STATE/run"
  run "${AS[@]}" touch "$LOG" "$STATE/run/install.lock"
  installed || { say "sagecode is not installed; see $LOG (the next start retries)"; return 0; }
  exec 9>&-
  engine_data
  run "${AS[@]}" timeout 60 "$VENV/bin/python" -I -m runtime.lifecycle "$HOOK" || say "see $LOG"
  return 0
}

main "$@"
