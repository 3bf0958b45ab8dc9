#!/usr/bin/env bash
# Prove that a learner's servers, databases, caches and site are that learner's alone, the way an
# attacker would: user A (--owner) holds its lessons' servers open (holder.py, perflab's public
# API), and a second local user B (--intruder) finds them from /proc and the disk and attacks them
# (attack.py, system Python, standard library only). Two rounds: before the second, B pre-creates
# ("squats") every shared temporary path A's first round made, and A must still start cleanly.
#
#   bash tests/isolation/run.sh --checkout DIR --python DIR/.venv/bin/python --owner learner|root
#
# Run as root. Exits 0 only if every attempt was refused, every positive control passed, nothing
# was blocked and nothing of A's was left running. Prints one table row per attempt.
#
# It runs in a sandbox of its own when it can (unshare: private /tmp, /var/tmp, /dev/shm and
# network with only loopback). A and B still share all of them, as two users on one host do; but
# then every file, socket and process in there is the test's own, so it never attacks, removes or
# kills anything that belongs to another job on the machine.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: run.sh --checkout DIR --python PYTHON --owner USER [options]
  --checkout DIR      the workshop checkout whose perflab is tested (A must be able to read it)
  --python PYTHON     the Python A runs (the checkout's .venv/bin/python; A must be able to run it)
  --owner USER        user A: "learner" (created if missing) or "root"
  --pythonpath DIR    put DIR first on A's PYTHONPATH (test another tree with an existing venv)
  --intruder USER     user B, created if missing (default: intruder)
  --squat-with KIND   how B squats: "dir" (0777 folders, default) or "symlink" (to B's folder)
  --sandbox WHEN      auto (default), yes (fail without one) or no (share the host's /tmp and
                      network; then the driver removes or kills only what is provably A's)
  --keep DIR          copy the work folder (logs, rows) into DIR at the end, for a post-mortem
  --keep-home-modes   leave A's home and ~/.cache as they are (by default a non-root A's are
                      opened to 0755 for the run, then restored: see below)
EOF
}

arguments=("$@")
checkout= python= owner= pythonpath= intruder=intruder squat_with=dir sandbox=auto keep= inside=0
open_home=1
while [ $# -gt 0 ]; do
  case "$1" in
    --checkout) checkout=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --owner) owner=$2; shift 2 ;;
    --pythonpath) pythonpath=$2; shift 2 ;;
    --intruder) intruder=$2; shift 2 ;;
    --squat-with) squat_with=$2; shift 2 ;;
    --sandbox) sandbox=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    --keep-home-modes) open_home=0; shift ;;
    --inside-sandbox) inside=1; shift ;; # set by the re-run inside unshare
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
die() { printf 'isolation: %s\n' "$*" >&2; exit 2; }
[ -n "$checkout" ] && [ -n "$python" ] && [ -n "$owner" ] || { usage >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || die "run as root: it creates users and runs commands as them"
case "$squat_with" in dir | symlink) ;; *) die "--squat-with is dir or symlink" ;; esac
case "$sandbox" in auto | yes | no) ;; *) die "--sandbox is auto, yes or no" ;; esac
[ "$owner" != "$intruder" ] || die "--owner and --intruder must be different users"
checkout=$(cd "$checkout" && pwd -P)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
system_python=/usr/bin/python3

if [ "$inside" -eq 0 ] && [ "$sandbox" != no ]; then
  if unshare --mount --net --propagation private true 2>/dev/null; then
    exec unshare --mount --net --propagation private -- \
      bash "$here/run.sh" "${arguments[@]}" --inside-sandbox
  fi
  [ "$sandbox" = auto ] || die "no sandbox: 'unshare --mount --net' failed (needs CAP_SYS_ADMIN)"
fi
if [ "$inside" -eq 1 ]; then
  for folder in /tmp /var/tmp /dev/shm; do
    mount -t tmpfs -o mode=1777,nosuid,nodev isolation "$folder"
  done
  if command -v ip >/dev/null; then
    ip link set lo up
  else # no iproute2: SIOCGIFFLAGS, then SIOCSIFFLAGS with IFF_UP
    "$system_python" -c 'import fcntl, socket, struct
s = socket.socket(); req = struct.pack("16sH14s", b"lo", 0, b"")
flags = struct.unpack("16sH14s", fcntl.ioctl(s, 0x8913, req))[1]
fcntl.ioctl(s, 0x8914, struct.pack("16sH14s", b"lo", flags | 1, b""))'
  fi
fi
netns=$(readlink /proc/self/ns/net)

READY_TIMEOUT=180  # first start: initdb and the tiny template
ATTACK_TIMEOUT=150
STOP_TIMEOUT=60
LEFTOVER_TIMEOUT=25  # the shared PostgreSQL stops ~2 s after its last client; be generous
umask 077
export LC_ALL=C # sort and comm must agree on order

section() { printf '\n===== %s =====\n' "$*"; }

# --- users --------------------------------------------------------------------------------------
ensure_user() { # name shell
  if ! id -u "$1" >/dev/null 2>&1; then
    useradd --create-home --shell "$2" "$1"
    echo "created user $1"
  fi
}
[ "$owner" = root ] || ensure_user "$owner" /bin/bash
ensure_user "$intruder" /usr/sbin/nologin
owner_home=$(getent passwd "$owner" | cut -d: -f6)
owner_uid=$(id -u "$owner")
intruder_home=$(getent passwd "$intruder" | cut -d: -f6)
intruder_uid=$(id -u "$intruder")
[ "$intruder_uid" -ne 0 ] || die "the intruder must not be root"
# PostgreSQL runs as `postgres` when A is root: then its files and sockets are A's too.
a_uids=" $owner_uid "
if [ "$owner_uid" -eq 0 ] && id -u postgres >/dev/null 2>&1; then a_uids+="$(id -u postgres) "; fi

# A clean login-like environment for each user; PERFLAB_STRICT so a missing server is an error.
owner_env=(env -i "HOME=$owner_home" "USER=$owner" "LOGNAME=$owner" "PATH=/usr/local/bin:/usr/bin:/bin"
  "LANG=C.UTF-8" PERFLAB_STRICT=1 PYTHONDONTWRITEBYTECODE=1)
[ -z "$pythonpath" ] || owner_env+=("PYTHONPATH=$pythonpath")
intruder_env=(env -i "HOME=$intruder_home" "USER=$intruder" "LOGNAME=$intruder" "PATH=/usr/bin:/bin"
  "LANG=C.UTF-8" PYTHONDONTWRITEBYTECODE=1)
# And the umask a login gives them, not this script's 077: A's files must be as open as a real
# learner's, or perflab would get credit for privacy it did not ask for.
login_umask=$(awk '$1 == "UMASK" { print $2 }' /etc/login.defs 2>/dev/null | tail -n 1)
login_umask=${login_umask:-022}
as_owner() { (cd "$owner_home" && umask "$login_umask" && exec runuser -u "$owner" -- "${owner_env[@]}" "$@"); }
as_intruder() { (cd "$intruder_home" && umask "$login_umask" && exec runuser -u "$intruder" -- "${intruder_env[@]}" "$@"); }

# --- the work folder: root's, with one private folder for A and one for B -----------------------
run=$(mktemp -d /tmp/isolation.XXXXXXXX)
chmod 0711 "$run"
mkdir -m 0755 "$run/shared"
install -m 0644 "$here/holder.py" "$here/attack.py" "$run/shared/"
install -d -m 0700 -o "$owner" "$run/a"
install -d -m 0700 -o "$intruder" "$run/b"
results=$run/results.tsv
: >"$results"
: >"$run/squats"

round=0
holder_pid= holder_python_pid= site_pgid=
row() { # target tried result [detail]
  printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$1" "$2" "$3" "${4:-}" >>"$results"
}
add_rows() { # a TSV of rows (target, tried, result, detail) from holder or attack
  [ -f "$1" ] || return 0
  awk -v r="$round" 'NF { print r "\t" $0 }' "$1" >>"$results"
}

server_processes() { # "pid user" of each memcached, redis-server, postgres that is not a zombie
  ps -eo pid=,user:32=,stat=,comm= \
    | awk '$4 ~ /^(memcached|redis-server|postgres)$/ && $3 !~ /^Z/ { print $1, $2 }'
}
preexisting=" $(server_processes | awk '{ print $1 }' | tr '\n' ' ') "

temp_entries() { # "path<TAB>uid<TAB>type" of each entry in the shared temporary folders
  {
    find /tmp /var/tmp /dev/shm -mindepth 1 -maxdepth 1 -printf '%p\t%U\t%y\n'
    find /run/user -mindepth 1 -maxdepth 2 -printf '%p\t%U\t%y\n'
  } 2>/dev/null | awk -F'\t' -v run="$run" '$1 != run' | sort -t$'\t' -k1,1 || true
}

tcp_listeners_of_a() { # local "address:port" (hex) of listening TCP sockets A (or postgres) owns
  awk -v uids="$a_uids" 'FNR > 1 && $4 == "0A" && index(uids, " " $8 " ") { print $2 }' \
    /proc/net/tcp /proc/net/tcp6 | sort
}

below_driver() { # pid: true if it is this script or runs under it (ps, awk, subshells...)
  local pid=$1
  while [ -n "$pid" ] && [ "$pid" -gt 1 ]; do
    [ "$pid" -ne $$ ] || return 0
    pid=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f2)
  done
  return 1
}

candidate_leftovers() { # pids that may be A's and should be gone now
  if [ "$inside" -eq 1 ]; then
    # Everything in this network namespace is the test's: all but the driver must be gone.
    local pid
    for pid in $(ps -eo pid=,stat= | awk '$2 !~ /^Z/ { print $1 }'); do
      [ "$(readlink "/proc/$pid/ns/net" 2>/dev/null)" = "$netns" ] || continue
      below_driver "$pid" || echo "$pid"
    done
    return 0
  fi
  server_processes | while read -r pid user; do
    case "$preexisting" in *" $pid "*) continue ;; esac
    case "$a_uids" in *" $(id -u "$user" 2>/dev/null) "*) echo "$pid" ;; esac
  done
  # A non-root learner runs nothing else here: any process of theirs is left over.
  [ "$owner" = root ] || ps -o pid= -u "$owner" 2>/dev/null || true
}

stop_holder() { # ask the holder to stop, wait, then force; sets holder_status
  holder_status=
  [ -n "$holder_pid" ] || return 0
  touch "$run/a/stop-$round"
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$holder_pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
  if kill -0 "$holder_pid" 2>/dev/null; then
    kill -TERM "$holder_pid" 2>/dev/null || true
    [ -z "$holder_python_pid" ] || kill -KILL "$holder_python_pid" 2>/dev/null || true
    sleep 1
    kill -KILL "$holder_pid" 2>/dev/null || true
    holder_status=timeout
  fi
  local status=0
  wait "$holder_pid" 2>/dev/null || status=$?
  [ -n "$holder_status" ] || holder_status=$status
  holder_pid= holder_python_pid=
  # The site runs in a session of its own; the holder stops it, but make sure.
  if [ -n "$site_pgid" ] && kill -0 -- "-$site_pgid" 2>/dev/null; then
    kill -KILL -- "-$site_pgid" 2>/dev/null || true
    row "site (A's shop)" "stopped with the holder" FAILED "still running; killed group $site_pgid"
  fi
  site_pgid=
}

check_leftovers() { # nothing of A's may outlive the holder: servers, processes, listeners
  local deadline=$((SECONDS + LEFTOVER_TIMEOUT)) left ports
  while :; do
    left=$(candidate_leftovers | sort -un | tr '\n' ' ')
    ports=$(comm -13 "$run/listeners-of-a-before" <(tcp_listeners_of_a) | tr '\n' ' ')
    if [ -z "${left// /}" ] && [ -z "${ports// /}" ]; then
      row "after round $round" "nothing of A's still running (servers, processes, ports)" OK
      return 0
    fi
    [ $SECONDS -lt $deadline ] || break
    sleep 0.5
  done
  local described= pid
  for pid in $left; do
    described+="$pid:$(ps -o user=,comm= -p "$pid" 2>/dev/null | tr -s ' ' '/') "
  done
  row "after round $round" "nothing of A's still running (servers, processes, ports)" FAILED \
    "after ${LEFTOVER_TIMEOUT} s: ${described}listening (hex) ${ports:-none}"
  # Kill only what is provably the test's: inside the sandbox, or a non-root learner's.
  if [ "$inside" -eq 1 ] || [ "$owner" != root ]; then
    for pid in $left; do kill -KILL "$pid" 2>/dev/null || true; done
  fi
}

remove_squats() {
  local path target
  while IFS=$'\t' read -r path target; do
    rm -rf -- "$path"
    [ -z "$target" ] || rm -rf -- "$target"
  done <"$run/squats"
  : >"$run/squats"
}

restore_home_modes() {
  local mode path
  while read -r mode path; do chmod "$mode" -- "$path"; done <"$run/home-modes" 2>/dev/null || true
  : >"$run/home-modes"
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_holder || true
  remove_squats || true
  restore_home_modes || true
  if [ -n "$keep" ]; then
    mkdir -p "$keep" && cp -a "$run/." "$keep/" && echo "work folder copied to $keep"
  fi
  rm -rf -- "$run"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- preflight: A runs the checkout's perflab with the given Python -----------------------------
section "Isolation test: A=$owner (uid $owner_uid), B=$intruder, checkout $checkout"
if [ "$inside" -eq 1 ]; then
  echo "sandbox: private /tmp, /var/tmp, /dev/shm and network (loopback only), shared by A and B"
else
  echo "no sandbox: the host's /tmp and network (nothing the driver cannot prove is A's is touched)"
fi
perflab_file=$(as_owner "$python" -c 'import django, perflab; print(perflab.__file__)' 2>&1) \
  || die "$owner cannot run '$python' with perflab and Django (every folder on the way must be
readable by $owner; a virtualenv made from root's pyenv Python is not):
$perflab_file"
case "$perflab_file" in
  "$checkout"/*) ;;
  *) die "$owner's perflab is $perflab_file, not the one in $checkout (pass --pythonpath?)" ;;
esac
echo "A's perflab: $perflab_file"
[ -x "$system_python" ] || die "$system_python is missing (B runs the attack with it)"

# Homes are 0755 on many hosts (and ~/.cache is whatever the first tool made it). Open a learner's
# for the run, so only the modes perflab gives its own folders keep B out of A's state; if the
# home's mode were what refused B, the check of the state folder could never fail.
: >"$run/home-modes"
if [ "$owner" != root ] && [ "$open_home" -eq 1 ]; then
  as_owner mkdir -p "$owner_home/.cache"
  for path in "$owner_home" "$owner_home/.cache"; do
    printf '%s %s\n' "$(stat -c %a -- "$path")" "$path" >>"$run/home-modes"
    chmod 0755 -- "$path"
  done
  echo "opened $owner_home and its .cache to 0755 for the run (restored at the end)"
fi

# What was there before A started: not A's, never attacked, never squatted.
"$system_python" "$run/shared/attack.py" listeners --out "$run/shared/listeners.json"
chmod 0644 "$run/shared/listeners.json"
temp_entries >"$run/shared/entries-before"
chmod 0644 "$run/shared/entries-before"
tcp_listeners_of_a >"$run/listeners-of-a-before"

run_round() { # one round: A up, controls, B attacks, A down, nothing left
  round=$1
  local ready=$run/a/ready-$round.json started=$SECONDS
  section "Round $round: A holds its lab; B attacks"
  (cd "$owner_home" && umask "$login_umask" && exec runuser -u "$owner" -- "${owner_env[@]}" "$python" \
    "$run/shared/holder.py" --ready "$ready" --stop "$run/a/stop-$round" \
    --controls "$run/a/controls-$round.tsv" --site-log "$run/a/site-$round.log" \
    --endpoints "$run/a/endpoints-$round.txt") >"$run/holder-$round.log" 2>&1 </dev/null &
  holder_pid=$!
  local deadline=$((SECONDS + READY_TIMEOUT))
  while [ ! -s "$ready" ] && kill -0 "$holder_pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
    sleep 0.3
  done
  if [ ! -s "$ready" ]; then
    local verdict=FAILED why="not ready within ${READY_TIMEOUT} s" tried="start A's lab and site"
    kill -0 "$holder_pid" 2>/dev/null || why="exited before it was ready"
    if [ -s "$run/squats" ]; then verdict=BLOCKED tried+=" after B's squats"; fi
    stop_holder
    add_rows "$run/a/controls-$round.tsv"
    row "holder (A)" "$tried" "$verdict" \
      "$why; its last line: $(awk NF "$run/holder-$round.log" | tail -n 1)"
    echo "holder did not start; its output ends with:"
    tail -n 15 "$run/holder-$round.log" | sed 's/^/  | /'
    check_leftovers
    temp_entries >"$run/entries-after-$round"
    return 0
  fi
  holder_python_pid=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$ready")
  site_pgid=$(sed -n 's/.*"site_pgid": *\([0-9]*\).*/\1/p' "$ready")
  add_rows "$run/a/controls-$round.tsv"
  echo "A is ready after $((SECONDS - started)) s: $(awk NF "$run/a/endpoints-$round.txt" | wc -l) endpoints"
  temp_entries >"$run/entries-during-$round"

  # B gets where A's servers are only to check its own scan found them all.
  install -m 0600 -o "$intruder" "$run/a/endpoints-$round.txt" "$run/b/expect-$round.txt"
  local status=0
  as_intruder timeout --kill-after=5 "$ATTACK_TIMEOUT" \
    "$system_python" "$run/shared/attack.py" attack --owner "$owner" \
    --baseline "$run/shared/listeners.json" --entries "$run/shared/entries-before" \
    --expect "$run/b/expect-$round.txt" --ignore "$run" --report "$run/b/attack-$round.tsv" \
    </dev/null || status=$?
  if [ "$status" -ne 0 ] || [ ! -f "$run/b/attack-$round.tsv" ]; then
    row "attack (B)" "run every attempt to the end" FAILED "exit status $status"
  fi
  add_rows "$run/b/attack-$round.tsv"
  echo "B made $(cat "$run/b/attack-$round.tsv" 2>/dev/null | awk NF | wc -l) attempts"

  stop_holder
  case "$holder_status" in
    0 | 1) row "holder (A)" "stops when told" OK "exit $holder_status" ;;
    *) row "holder (A)" "stops when told" FAILED "exit $holder_status; see its log" ;;
  esac
  check_leftovers
  temp_entries >"$run/entries-after-$round"
}

squat() { # as if /tmp had just been cleaned, B pre-creates every path A's round 1 made there
  round=squat
  section "Between rounds: B squats what A's round 1 made in the shared temporary folders"
  local made path uid
  made=$(cat "$run/entries-during-1" "$run/entries-after-1" 2>/dev/null \
    | awk -F'\t' -v uids="$a_uids" 'index(uids, " " $2 " ") { print $1 }' | sort -u \
    | comm -13 <(cut -f1 "$run/shared/entries-before" | sort -u) - || true)
  if [ -z "$made" ]; then
    row "/tmp /var/tmp /dev/shm /run/user" "B squats every path A's round 1 made" NOTE \
      "A made none: nothing predictable to squat"
    return 0
  fi
  while IFS= read -r path; do
    [ -n "$path" ] || continue
    if [ -e "$path" ] || [ -L "$path" ]; then
      uid=$(stat -c %u -- "$path")
      # A reboot or a temp cleaner would remove it. Outside the sandbox only a learner's own
      # file is provably the test's: root's or postgres's could be another job's.
      if [ "$inside" -eq 0 ] && { [ "$owner" = root ] || [ "$uid" != "$owner_uid" ]; }; then
        row "$path" "B pre-creates it ($squat_with, 0777)" FAILED \
          "still there (uid $uid); without a sandbox the driver will not remove it"
        continue
      fi
      rm -rf -- "$path"
    fi
    local target=
    if [ "$squat_with" = symlink ]; then
      target=$(as_intruder mktemp -d "$intruder_home/squat.XXXXXXXX")
      as_intruder chmod 0777 "$target"
      as_intruder ln -s "$target" "$path" || true
    else
      as_intruder mkdir -m 0777 -- "$path" || true
      as_intruder chmod 0777 -- "$path" 2>/dev/null || true
    fi
    if { [ -L "$path" ] || [ -d "$path" ]; } && [ "$(stat -c %u -- "$path")" = "$intruder_uid" ]; then
      printf '%s\t%s\n' "$path" "$target" >>"$run/squats"
      row "$path" "B pre-creates it ($squat_with, 0777)" NOTE "squatted"
    else
      row "$path" "B pre-creates it ($squat_with, 0777)" NOTE "B cannot create it there"
    fi
  done <<<"$made"
}

check_squats() { # B's squatted paths must not have received anything of A's
  local path target inside_path foreign
  while IFS=$'\t' read -r path target; do
    inside_path=${target:-$path}
    if [ ! -e "$inside_path" ] || [ "$(stat -c %u -- "$inside_path")" != "$intruder_uid" ]; then
      row "$path (B's squat)" "did A put anything in it?" NOTE "no longer B's (removed or replaced)"
      continue
    fi
    foreign=$(find "$inside_path" -mindepth 1 ! -uid "$intruder_uid" -printf '%p(%u) ' 2>/dev/null \
      | head -c 300)
    if [ -n "$foreign" ]; then
      row "$path (B's squat)" "did A put anything in it?" BREACH "A's files in B's folder: $foreign"
    else
      row "$path (B's squat)" "did A put anything in it?" REFUSED "nothing of A's in it"
    fi
  done <"$run/squats"
}

print_table() {
  awk -F'\t' '
    { n++; r[n] = $1; t[n] = $2; w[n] = $3; v[n] = $4; d[n] = $5
      if (length($2) > wt) wt = length($2); if (length($3) > ww) ww = length($3) }
    END {
      if (wt > 60) wt = 60; if (ww > 56) ww = 56
      fmt = "  %-" wt "s  %-" ww "s  %s\n"
      for (i = 1; i <= n; i++) {
        if (r[i] != last) {
          title = (r[i] == "squat") ? "Between rounds: B squats" : "Round " r[i]
          printf "\n%s\n", title; printf fmt, "TARGET", "TRIED", "RESULT"; last = r[i]
        }
        printf fmt, t[i], w[i], v[i] (d[i] == "" ? "" : "  " d[i])
      }
    }' "$results"
}

run_round 1
squat
run_round 2
round=2
check_squats
remove_squats

section "Attempts (target, what was tried, result)"
print_table
section "Verdict"
count() { awk -F'\t' -v want="$1" 'index(want, " " $4 " ")' "$results" | wc -l; }
breaches=$(count " BREACH ")
failures=$(count " FAILED BLOCKED ")
echo "  $(count " REFUSED ") refused, $breaches breaches, $(count " OK ") controls OK," \
  "$failures failed or blocked"
if [ "$breaches" -gt 0 ] || [ "$failures" -gt 0 ]; then
  awk -F'\t' '$4 == "BREACH" || $4 == "FAILED" || $4 == "BLOCKED" {
    printf "  - round %s: %s: %s: %s  %s\n", $1, $2, $3, $4, $5 }' "$results"
  echo "ISOLATION TEST FAILED"
  exit 1
fi
echo "ISOLATION TEST PASSED: B was refused everywhere, and A's lab worked throughout"
