set -o vi
alias ll="ls -la"
