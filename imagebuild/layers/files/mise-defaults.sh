#!/bin/sh
# sagecode-mise-defaults: installs the usual runtimes with mise, on demand, into the
# persistent home (mise keeps them under ~/.local/share/mise, its config under
# ~/.config/mise), so they survive restarts without making the image bigger.
# SAGECODE_MISE_RUNTIMES overrides the set; --dry-run prints the command.
set -eu
RUNTIMES="${SAGECODE_MISE_RUNTIMES:-node@22 java@21 python@3.13 python@3.12 python@3.11 python@3.10}"

main() {
  if [ "${1:-}" = --dry-run ]; then
    echo "mise use -g $RUNTIMES"
    return 0
  fi
  # shellcheck disable=SC2086 # the set is a list of words on purpose
  exec mise use -g $RUNTIMES
}

main "$@"
