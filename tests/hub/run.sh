#!/usr/bin/env bash
# Prove the classroom kit on a real JupyterHub: N local learners log in through the hub (PAM), each
# starts a server through the hub's REST API, and each runs lessons 06 (memcached, Redis) and 03
# (PostgreSQL) in kernels of that server, all at the same time (drive.py). While every server is
# up, learner 1 tries learner 2's server and hub API with its own token, and from inside its
# kernel attacks learner 2's PostgreSQL, memcached and Redis (tests/isolation/attack.py). Then the
# servers stop through the API, the hub stops, and nothing may be left running.
#
#   bash tests/hub/run.sh --checkout DIR --python DIR/.venv/bin/python [--learners 3] [--record]
#
# Run as root. Like The Littlest JupyterHub, the admin installs one workshop environment for
# everyone: a fresh venv under /opt (the checkout's lock, the hub's pins in requirements-hub.txt,
# the checkout itself), readable by all; configurable-http-proxy comes from npm (package-lock.json)
# for the system's Node.js. The hub runs in a sandbox (unshare: private /tmp and a loopback-only
# network) when it can, so every process and socket there is the test's own.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: run.sh --checkout DIR --python PYTHON [options]
  --checkout DIR     the workshop checkout (its committed files are what learners get)
  --python PYTHON    the checkout's venv Python: its uv installs the environment, and its base
                     interpreter is the environment's when every user can run it (otherwise
                     /usr/bin/python3)
  --learners N       learners at once (default 3; at least 2 for the isolation checks)
  --record           write notebooks/recorded/hub.json in the checkout when the run passes
  --keep DIR         copy the run's logs and report into DIR at the end
  --sandbox WHEN     auto (default), yes (fail without one) or no
EOF
}

arguments=("$@")
checkout= python= learners=3 record=0 keep= sandbox=auto inside=
while [ $# -gt 0 ]; do
  case "$1" in
    --checkout) checkout=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --learners) learners=$2; shift 2 ;;
    --record) record=1; shift ;;
    --keep) keep=$2; shift 2 ;;
    --sandbox) sandbox=$2; shift 2 ;;
    --inside) inside=$2; shift 2 ;; # the prepared folder, set for the run inside the sandbox
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
die() { printf 'hub test: %s\n' "$*" >&2; exit 2; }
[ -n "$checkout" ] && [ -n "$python" ] || { usage >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || die "run as root: it creates users and runs the hub as root"
[[ "$learners" =~ ^[0-9]+$ ]] && [ "$learners" -ge 2 ] || die "--learners must be 2 or more"
case "$sandbox" in auto | yes | no) ;; *) die "--sandbox is auto, yes or no" ;; esac
checkout=$(cd "$checkout" && pwd -P)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
export LC_ALL=C
section() { printf '\n===== %s =====\n' "$*"; }
names=()
for i in $(seq 1 "$learners"); do names+=("hubl$i"); done
lesson_paths=(workshop/notebooks/06-cache-what-is-expensive.ipynb
  workshop/notebooks/03-add-the-right-indexes.ipynb)
LEFTOVER_TIMEOUT=25 # a learner's shared PostgreSQL stops about 2 s after its last client
DRIVE_TIMEOUT=480   # logins, servers, both lessons, the isolation checks and the stop

# =================================== inside the sandbox ==========================================
if [ -n "$inside" ]; then
  prepared=$inside venv=$inside/venv
  for folder in /tmp /var/tmp /dev/shm; do
    mount -t tmpfs -o mode=1777,nosuid,nodev hubtest "$folder"
  done
  if command -v ip >/dev/null; then ip link set lo up; else
    /usr/bin/python3 -c 'import fcntl, socket, struct
s = socket.socket(); req = struct.pack("16sH14s", b"lo", 0, b"")
flags = struct.unpack("16sH14s", fcntl.ioctl(s, 0x8913, req))[1]
fcntl.ioctl(s, 0x8914, struct.pack("16sH14s", b"lo", flags | 1, b""))'
  fi
  netns=$(readlink /proc/self/ns/net)
  sandboxed=0
  [ "$netns" = "$(readlink /proc/1/ns/net)" ] || sandboxed=1
  hub_processes() { # pids of hubs, single-user servers and proxies (their comm; CHP's is node)
    ps -eo pid=,comm=,args= | awk '$2 ~ /^(jupyterhub|jupyterhub-sing)$/ ||
      ($2 == "node" && /configurable-http-proxy/) { print $1 }'
  }
  hubs_before=" $(hub_processes | tr '\n' ' ') "
  run=$(mktemp -d /tmp/hub.XXXXXXXX)
  chmod 0711 "$run"
  mkdir -m 0755 "$run/shared"
  install -m 0644 "$here/attack.py" "$run/shared/attack.py"
  install -m 0600 "$prepared/passwords" "$run/passwords"
  read -r port hub_port api_port < <("$venv/bin/python" -c 'import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
  hub_pid=
  stop_hub() { # SIGTERM, as systemd stops TLJH's hub; it stops the servers and the proxy
    [ -n "$hub_pid" ] || return 0
    kill -TERM "$hub_pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while kill -0 "$hub_pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    if kill -0 "$hub_pid" 2>/dev/null; then
      echo "the hub did not stop within 30 s of SIGTERM: killed"
      kill -KILL "$hub_pid" 2>/dev/null || true
      hub_failed=1
    fi
    wait "$hub_pid" 2>/dev/null || true
    hub_pid=
  }
  below_me() { # pid: true if it is this script or runs under it (ps, sleep), not under the hub
    local pid=$1
    while [ -n "$pid" ] && [ "$pid" -gt 1 ]; do
      [ "$pid" -ne "${hub_root:-0}" ] || return 1
      [ "$pid" -ne $$ ] || return 0
      pid=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f2)
    done
    return 1
  }
  leftovers() { # "pid user command" of every process in the sandbox, or a learner's, or a new hub's
    local pid hubs_now=
    [ "$sandboxed" -eq 1 ] || hubs_now=" $(hub_processes | tr '\n' ' ') "
    for pid in $(ps -eo pid=,stat= | awk '$2 !~ /^Z/ { print $1 }'); do
      if [ "$sandboxed" -eq 1 ] && [ "$(readlink "/proc/$pid/ns/net" 2>/dev/null)" = "$netns" ]; then
        below_me "$pid" && continue
      elif [[ "$hubs_now" == *" $pid "* ]] && [[ "$hubs_before" != *" $pid "* ]]; then
        : # no sandbox: a hub, server or proxy that was not running before this one started
      else
        case " ${learner_uids} " in *" $(stat -c %u "/proc/$pid" 2>/dev/null) "*) ;; *) continue ;; esac
      fi
      # A pid whose walk up failed may be one of our own short-lived commands, gone already.
      described=$(ps -o user=,comm= -p "$pid" 2>/dev/null | tr -s ' ') || continue
      [ -z "$described" ] || echo "$pid $described"
    done
  }
  described=
  learner_uids=$(for name in "${names[@]}"; do id -u "$name"; done | tr '\n' ' ')
  hub_failed=0
  trap 'stop_hub; cp -a "$run/." "$prepared/kept/" 2>/dev/null || true' EXIT

  section "A real JupyterHub on 127.0.0.1:$port (hub API $hub_port, proxy API $api_port)"
  (cd "$run" && umask 022 && exec env -i "PATH=$venv/bin:/usr/local/bin:/usr/bin:/bin" \
    LANG=C.UTF-8 "HUB_TEST_RUN=$run" "HUB_TEST_VENV=$venv" \
    "HUB_TEST_LEARNERS=$(IFS=,; echo "${names[*]}")" "HUB_TEST_PORT=$port" \
    "HUB_TEST_HUB_PORT=$hub_port" "HUB_TEST_PROXY_API_PORT=$api_port" \
    "HUB_TEST_CHP=$prepared/proxy/node_modules/.bin/configurable-http-proxy" \
    "$venv/bin/jupyterhub" -f "$here/jupyterhub_config.py") >"$run/hub.log" 2>&1 </dev/null &
  hub_pid=$! hub_root=$!
  started=$SECONDS
  until "$venv/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "http://127.0.0.1:$port/hub/api/" 2>/dev/null; do
    if ! kill -0 "$hub_pid" 2>/dev/null || [ $((SECONDS - started)) -gt 60 ]; then
      tail -n 30 "$run/hub.log" >&2
      die "the hub did not answer within 60 s (its log above)"
    fi
    sleep 0.3
  done
  echo "hub and proxy up in $((SECONDS - started)) s: $("$venv/bin/jupyterhub" --version)," \
    "configurable-http-proxy $("$prepared/proxy/node_modules/.bin/configurable-http-proxy" --version)," \
    "Node.js $(node --version)"

  section "${learners} learners at once: log in, start servers, run ${lesson_paths[*]##*/}"
  lesson_args=()
  for path in "${lesson_paths[@]}"; do lesson_args+=(--lesson "$path"); done
  status=0
  # A hung kernel must not hold CI: the lessons take about a minute here.
  timeout --kill-after=10 "$DRIVE_TIMEOUT" "$venv/bin/python" "$here/drive.py" --hub-url "http://127.0.0.1:$port" \
    --learners "$(IFS=,; echo "${names[*]}")" --passwords "$run/passwords" "${lesson_args[@]}" \
    --attack "$run/shared/attack.py" --shared "$run/shared" --hub-pid "$hub_pid" \
    --report "$run/report.json" --record "$run/hub.json" </dev/null || status=$?

  section "Stop the hub (SIGTERM); nothing may be left running"
  stop_hub
  deadline=$((SECONDS + LEFTOVER_TIMEOUT))
  while left=$(leftovers) && [ -n "$left" ] && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
  if [ -n "$left" ]; then
    echo "left running ${LEFTOVER_TIMEOUT} s after the hub stopped (killed now):"
    echo "$left" | sed 's/^/  /'
    for pid in $(echo "$left" | awk '{ print $1 }'); do kill -KILL "$pid" 2>/dev/null || true; done
    hub_failed=1
  else
    echo "  nothing: no learner process, no hub, proxy, memcached, Redis or PostgreSQL"
  fi
  if grep -q -E '\[E ' "$run/hub.log"; then
    echo "the hub logged errors:"
    grep -E '\[E ' "$run/hub.log" | head -n 10 | sed 's/^/  | /'
  fi
  [ "$hub_failed" -eq 0 ] || status=1
  exit "$status"
fi

# =================================== outside: prepare ============================================
system_python=/usr/bin/python3
[ -x "$python" ] || die "--python $python is not executable"
uv=$(dirname "$python")/uv
[ -x "$uv" ] || uv=$(command -v uv) || die "no uv beside $python or on PATH (make setup installs it)"
command -v node >/dev/null && command -v npm >/dev/null || die "node and npm are needed (apt install nodejs npm)"
node_version=$(node --version)

prepared=
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  for name in "${names[@]}"; do
    id -u "$name" >/dev/null 2>&1 || continue
    for pid in $(ps -o pid= -u "$name" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    userdel -r "$name" >/dev/null 2>&1 || userdel "$name" >/dev/null 2>&1 || true
  done
  if [ -n "$prepared" ]; then
    if [ -n "$keep" ] && [ -d "$prepared/kept" ]; then
      mkdir -p "$keep" && cp -a "$prepared/kept/." "$keep/" && echo "logs and report copied to $keep"
    fi
    rm -rf -- "$prepared"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
began=$SECONDS
umask 022

section "The workshop environment, as a TLJH admin installs it for everyone"
prepared=$(mktemp -d /opt/workshop-hub.XXXXXXXX)
chmod 0755 "$prepared"
mkdir -m 0700 "$prepared/kept"
# CI's checkout belongs to the learner: let root's git read it (git refuses "dubious ownership",
# and a local clone ignores -c), for this one clone only.
printf '[safe]\n\tdirectory = %s\n\tdirectory = %s/.git\n' "$checkout" "$checkout" >"$prepared/gitconfig"
GIT_CONFIG_GLOBAL=$prepared/gitconfig git clone -q --no-hardlinks "$checkout" "$prepared/workshop"
echo "  $prepared/workshop: the checkout's committed files ($(git -C "$prepared/workshop" rev-parse --short HEAD))"
base=$("$python" -c 'import sys; print(sys._base_executable)')
if ! runuser -u nobody -- "$base" -c pass 2>/dev/null; then
  echo "  $base is not runnable by every user (root's pyenv?): using $system_python"
  base=$system_python
fi
started=$SECONDS
"$base" -m venv --without-pip "$prepared/venv"
"$uv" pip install -q --compile-bytecode --python "$prepared/venv/bin/python" \
  -r "$prepared/workshop/requirements.txt" -r "$here/requirements-hub.txt" -e "$prepared/workshop"
echo "  $prepared/venv from $base ($("$prepared/venv/bin/python" -V)): the lock + $(grep -c '==' "$here/requirements-hub.txt") hub pins, in $((SECONDS - started)) s"

started=$SECONDS
mkdir "$prepared/proxy"
cp "$here/package.json" "$here/package-lock.json" "$prepared/proxy/"
(cd "$prepared/proxy" && npm ci --engine-strict --omit=dev --no-audit --no-fund --loglevel=error >/dev/null)
echo "  configurable-http-proxy $("$prepared/proxy/node_modules/.bin/configurable-http-proxy" --version) from npm (package-lock.json) for Node.js $node_version, in $((SECONDS - started)) s"

section "Learners: ${names[*]} (local users, PAM passwords, the lessons cloned into ~/workshop)"
: >"$prepared/passwords"
chmod 0600 "$prepared/passwords"
for name in "${names[@]}"; do
  if id -u "$name" >/dev/null 2>&1; then die "user $name exists already (a previous run's? userdel -r $name)"; fi
  useradd --create-home --shell /usr/sbin/nologin "$name"
  home=$(getent passwd "$name" | cut -d: -f6)
  password=$("$system_python" -c 'import secrets; print(secrets.token_urlsafe(18))')
  echo "$name:$password" | chpasswd
  printf '%s\t%s\n' "$name" "$password" >>"$prepared/passwords"
  # Many hosts make homes 0755: then only the modes perflab gives its own folders keep others out.
  chmod 0755 "$home"
  # As nbgitpuller would: a clone of the lessons in the learner's home, the learner's own.
  git clone -q --no-hardlinks "$prepared/workshop" "$home/workshop"
  chown -R "$name:$name" "$home/workshop"
done
runuser -u "${names[0]}" -- "$prepared/venv/bin/python" -c 'import jupyterhub, perflab, django' \
  || die "${names[0]} cannot import the workshop environment"
echo "  ${#names[@]} learners ready; preparing took $((SECONDS - began)) s"

# The sandbox hides the host's /tmp: what runs inside is copied to the prepared folder first.
mkdir -m 0755 "$prepared/hub"
cp "$here"/run.sh "$here"/drive.py "$here"/jupyterhub_config.py "$prepared/hub/"
cp "$checkout/tests/isolation/attack.py" "$prepared/hub/attack.py"
status=0
inner=(bash "$prepared/hub/run.sh" "${arguments[@]}" --inside "$prepared")
if [ "$sandbox" != no ] && unshare --mount --net --propagation private true 2>/dev/null; then
  echo "sandbox: private /tmp, /var/tmp, /dev/shm and a loopback-only network"
  unshare --mount --net --propagation private -- "${inner[@]}" || status=$?
else
  [ "$sandbox" = auto ] || die "no sandbox: 'unshare --mount --net' failed (needs CAP_SYS_ADMIN)"
  echo "no sandbox: the host's /tmp and network"
  "${inner[@]}" || status=$?
fi

if [ "$status" -eq 0 ] && [ "$record" -eq 1 ]; then
  install -m 0644 "$prepared/kept/hub.json" "$checkout/notebooks/recorded/hub.json"
  echo "recorded $checkout/notebooks/recorded/hub.json"
fi
section "Verdict (the whole test took $((SECONDS - began)) s)"
if [ "$status" -ne 0 ]; then
  echo "HUB TEST FAILED"
  exit 1
fi
echo "HUB TEST PASSED: every learner's lessons passed at once through the hub, no learner reached another's, and nothing was left running"
