# Sourced by the scripts that start servers: `on_exit CMD` runs CMD when the sourcing shell exits,
# after the commands registered before it, so that several servers can each stop themselves.
if ! declare -F on_exit >/dev/null; then
  _on_exit_cmds=()
  on_exit() {
    _on_exit_cmds+=("$1")
    trap 'for _c in "${_on_exit_cmds[@]}"; do eval "$_c"; done' EXIT
  }
fi
