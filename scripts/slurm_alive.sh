# Sourced by slurm_start.sh and slurm_stop.sh. `alive NAME PIDFILE`: the pid file names a live
# process called NAME (killed daemons linger as zombies here, and pids are reused).
alive() {
  local pid
  pid=$(cat "$2" 2>/dev/null) || return 1
  [ -r "/proc/$pid/stat" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] || return 1
  ! awk '{exit !($3 == "Z" || $3 == "X")}' "/proc/$pid/stat"
}
