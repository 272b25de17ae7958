# sagecode: the image's zsh defaults, read by /etc/zsh/zshrc for every interactive zsh.
# Your own ~/.zshrc is read afterwards: anything set there wins.

# History: long, shared between the terminals of one container, no duplicates.
HISTFILE="${HISTFILE:-$HOME/.zsh_history}"
HISTSIZE=50000
SAVEHIST=50000
setopt APPEND_HISTORY INC_APPEND_HISTORY SHARE_HISTORY HIST_IGNORE_DUPS HIST_IGNORE_SPACE
setopt AUTO_CD INTERACTIVE_COMMENTS NO_BEEP

# Keys: emacs bindings, prefix history search on the arrows, word jumps on Ctrl-arrows.
bindkey -e
autoload -Uz up-line-or-beginning-search down-line-or-beginning-search
zle -N up-line-or-beginning-search
zle -N down-line-or-beginning-search
bindkey '^[[A' up-line-or-beginning-search
bindkey '^[[B' down-line-or-beginning-search
bindkey '^[[1;5C' forward-word
bindkey '^[[1;5D' backward-word

# Completion, with its cache in the (persistent) home rather than next to ~/.zshrc.
autoload -Uz compinit
zcache="${XDG_CACHE_HOME:-$HOME/.cache}/zsh"
[ -d "$zcache" ] || mkdir -p "$zcache" 2>/dev/null
compinit -i -d "$zcache/zcompdump"
unset zcache
zstyle ':completion:*' menu select
zstyle ':completion:*' matcher-list 'm:{a-z}={A-Z}'
if (( $+commands[aws_completer] )); then
  autoload -Uz bashcompinit && bashcompinit
  complete -C aws_completer aws
fi

# Prompt: history number, user@host, folder and its name, git branch, last exit status.
autoload -Uz vcs_info
zstyle ':vcs_info:git:*' formats ' (%b)'
zstyle ':vcs_info:git:*' actionformats ' (%b|%a)'
precmd_functions+=(vcs_info)
setopt PROMPT_SUBST
PROMPT=$'\n%F{cyan}#%h%f %F{green}%n%f@%F{blue}%m%f:%F{yellow}%~%f|%B%1~%b%F{magenta}${vcs_info_msg_0_}%f%(?.. %F{red}[%?]%f)\n%# '

# Tools
alias ls='ls --color=auto' ll='ls -lAh' grep='grep --color=auto'
typeset -U path
path=("$HOME/.local/bin" $path)
# mise: runtimes the user installed (see sagecode-mise-defaults) come first on PATH.
# Its data and config stay in HOME (the persistent home) whatever XDG_* say.
if (( $+commands[mise] )); then
  export MISE_DATA_DIR="${MISE_DATA_DIR:-$HOME/.local/share/mise}"
  export MISE_CONFIG_DIR="${MISE_CONFIG_DIR:-$HOME/.config/mise}"
  eval "$(mise activate zsh)"
fi
