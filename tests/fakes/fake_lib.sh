# Shared by the recording fakes of tests/fakes/. Sourced, never run.
#
# A fake lives in a test's host directory H (H/bin, H/snap/bin, H/app/bin,
# ...). H holds fake.conf (KEY=VALUE knobs, sourced) and calls.log, where
# every call is recorded as:
#   == TOOL
#   arg: ARG            (one line per argument)
#   cwd: DIR
#   uid: UID
#   tty: yes|no         (stdout is a terminal)
#   env: KEY=VALUE      (one line per variable, sorted)
#   stdin: LINE         (lines the fake read from stdin, if any)
#   end

fake_find_home() {
  local dir
  dir=$(cd "$(dirname "$0")" && pwd)
  while [ "$dir" != "/" ]; do
    if [ -f "$dir/fake.conf" ]; then
      echo "$dir"
      return 0
    fi
    dir=$(dirname "$dir")
  done
  echo "fake: no fake.conf above $0" >&2
  exit 97
}

# A fake started by another fake (docker -> tootctl) inherits the home.
FAKE_HOME=${FAKE_HOME:-$(fake_find_home)}
export FAKE_HOME
export FAKES_DIR
FAKES_DIR=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
# shellcheck disable=SC1091
. "$FAKE_HOME/fake.conf"
PSQL=${PSQL:-/usr/lib/postgresql/15/bin/psql}
# Rails prints no server notices.
export PGOPTIONS='-c client_min_messages=warning'

# fake_record TOOL ARGS...: appends the call to calls.log (under a lock, as
# calls may run in parallel).
fake_record() {
  local tool=$1 tty=no
  shift
  if [ -t 1 ]; then tty=yes; fi
  {
    flock 9
    {
      echo "== $tool"
      local a
      for a in "$@"; do
        printf 'arg: %s\n' "$a"
      done
      echo "cwd: $(pwd)"
      echo "uid: $(id -u)"
      echo "tty: $tty"
      env | LC_ALL=C sort | sed 's/^/env: /'
      echo "end"
    } >>"$FAKE_HOME/calls.log"
  } 9>>"$FAKE_HOME/calls.lock"
}

# fake_record_stdin LINE: records a line read from stdin.
fake_record_stdin() {
  {
    flock 9
    printf 'stdin-of-last: %s\n' "$1" >>"$FAKE_HOME/calls.log"
  } 9>>"$FAKE_HOME/calls.lock"
}

# Thor's colours on a terminal.
fake_green() { if [ -t 1 ]; then printf '\033[32m%s\033[0m\n' "$1"; else printf '%s\n' "$1"; fi; }
fake_red() { if [ -t 2 ]; then printf '\033[31m%s\033[0m\n' "$1" >&2; else printf '%s\n' "$1" >&2; fi; }

# fake_migrate APP_DIR CONNINFO: what `rails db:migrate` does to the
# database: runs the pending migrations of APP_DIR/db/migrate and (unless
# SKIP_POST_DEPLOYMENT_MIGRATIONS=true) db/post_migrate, printing Rails'
# lines. MIGRATE_MODE=noop prints nothing and changes nothing; fail stops
# at the second pending migration with Rails' error and exit 1.
fake_migrate() {
  local app=$1 conn=$2
  if [ "${MIGRATE_MODE:-normal}" = noop ]; then return 0; fi
  "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$conn" \
    -c 'CREATE TABLE IF NOT EXISTS schema_migrations (version varchar PRIMARY KEY)' >/dev/null || exit 1
  local applied files f version name n=0
  applied=$("$PSQL" -X -At -d "$conn" -c 'SELECT version FROM schema_migrations') || exit 1
  files=$(ls "$app"/db/migrate/*.rb 2>/dev/null)
  if [ "${SKIP_POST_DEPLOYMENT_MIGRATIONS:-}" != true ]; then
    files="$files $(ls "$app"/db/post_migrate/*.rb 2>/dev/null)"
  fi
  for f in $(for p in $files; do basename "$p"; done | LC_ALL=C sort); do
    version=${f%%_*}
    if printf '%s\n' "$applied" | grep -qx "$version"; then continue; fi
    name=$(echo "${f#*_}" | sed 's/\.rb$//; s/\(^\|_\)\([a-z0-9]\)/\U\2/g')
    echo "== $version $name: migrating ================================"
    n=$((n + 1))
    if [ "${MIGRATE_MODE:-normal}" = fail ] && [ $n -ge 2 ]; then
      echo "bin/rails aborted!" >&2
      echo "StandardError: An error has occurred, this and all later migrations canceled:" >&2
      echo "PG::UndefinedColumn: ERROR:  column \"foo\" does not exist" >&2
      exit 1
    fi
    "$PSQL" -X -q -d "$conn" -c "INSERT INTO schema_migrations VALUES ('$version')" >/dev/null || exit 1
    echo "== $version $name: migrated (0.0012s) ======================="
    echo
  done
}

# The app's processes, as the fakes of snap, systemctl and docker start and
# stop them. $FAKE_HOME/run holds SERVICE.running for each running service;
# a web or streaming service also runs ../harness/fake_app_server.py (its pid in
# SERVICE.pid) on FAKE_WEB_PORT / FAKE_STREAMING_PORT when set, answering
# its health endpoint. Knobs: FAKE_HEALTH_FAIL (kinds, e.g. "web", whose
# health answers 503), FAKE_DEAD_SERVICES (kinds or names that die at
# start: "sidekiq").
#
# Redis (mastodon-server.redis, redis-server, compose's redis) is a real
# redis-server when FAKE_REDIS_PORT is set: started on 127.0.0.1 with
# FAKE_REDIS_DIR/FAKE_REDIS_FILE as its dir and dbfilename (and
# FAKE_REDIS_PASSWORD as requirepass, when set), with save points, so that
# a stop (SIGTERM) saves the dataset into the file first, as the real
# services do; stop waits until it has exited.

# fake_app_kind SERVICE: web, streaming, sidekiq, redis or other
# (mastodon-server.backend, mastodon-web and web are all "web").
fake_app_kind() {
  local n=${1#mastodon-server.}
  n=${n#mastodon-}
  n=${n%.service}
  case "$n" in
    redis | redis-server) echo redis ;;
    web | backend) echo web ;;
    streaming) echo streaming ;;
    sidekiq*) echo sidekiq ;;
    *) echo other ;;
  esac
}

# fake_redis start|stop: the real redis-server of the fake host.
fake_redis() {
  local pidfile="$FAKE_HOME/run/redis-server.pid" pid
  [ -n "${FAKE_REDIS_PORT:-}" ] || return 0
  if [ "$1" = stop ]; then
    [ -s "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 400); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.025
    done
    rm -f "$pidfile"
    return 0
  fi
  if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then return 0; fi
  local args=(--port "$FAKE_REDIS_PORT" --bind 127.0.0.1 --dir "$FAKE_REDIS_DIR"
    --dbfilename "${FAKE_REDIS_FILE:-dump.rdb}" --save "900 1" --appendonly no
    --daemonize yes --pidfile "$pidfile" --logfile "$FAKE_HOME/run/redis-server.log")
  if [ -n "${FAKE_REDIS_PASSWORD:-}" ]; then args+=(--requirepass "$FAKE_REDIS_PASSWORD"); fi
  /usr/bin/redis-server "${args[@]}" </dev/null >/dev/null 2>&1
  for _ in $(seq 1 400); do
    [ -s "$pidfile" ] && break
    sleep 0.025
  done
}

# fake_services start|stop SERVICE...
fake_services() {
  local verb=$1 s kind port pid fail
  shift
  mkdir -p "$FAKE_HOME/run"
  for s in "$@"; do
    kind=$(fake_app_kind "$s")
    if [ "$kind" = redis ]; then
      fake_redis "$verb"
      if [ "$verb" = stop ]; then rm -f "$FAKE_HOME/run/$s.running"; else touch "$FAKE_HOME/run/$s.running"; fi
      continue
    fi
    if [ "$verb" = stop ]; then
      rm -f "$FAKE_HOME/run/$s.running" "$FAKE_HOME/run/$s.ready"
      if [ -f "$FAKE_HOME/run/$s.pid" ]; then
        kill "$(cat "$FAKE_HOME/run/$s.pid")" 2>/dev/null
        rm -f "$FAKE_HOME/run/$s.pid"
      fi
      continue
    fi
    case " ${FAKE_DEAD_SERVICES:-} " in *" $s "* | *" $kind "*) continue ;; esac
    touch "$FAKE_HOME/run/$s.running"
    port=""
    [ "$kind" = web ] && port=${FAKE_WEB_PORT:-}
    [ "$kind" = streaming ] && port=${FAKE_STREAMING_PORT:-}
    [ -n "$port" ] || continue
    if [ -f "$FAKE_HOME/run/$s.pid" ] && kill -0 "$(cat "$FAKE_HOME/run/$s.pid")" 2>/dev/null; then
      continue
    fi
    fail=0
    case " ${FAKE_HEALTH_FAIL:-} " in *" $kind "*) fail=1 ;; esac
    rm -f "$FAKE_HOME/run/$s.ready"
    # Its own session, its output nowhere: the caller's pipes close when
    # the fake exits, as with a real service manager.
    setsid /usr/bin/python3 "$FAKES_DIR/../harness/fake_app_server.py" "$kind" "$port" \
      "$FAKE_HOME/run/$s.ready" "$fail" </dev/null >/dev/null 2>&1 &
    pid=$!
    echo "$pid" >"$FAKE_HOME/run/$s.pid"
    # Until it listens (or died: the port taken by another fake's server).
    for _ in $(seq 1 200); do
      [ -s "$FAKE_HOME/run/$s.ready" ] && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    # The server's own pid (setsid may have forked).
    [ -s "$FAKE_HOME/run/$s.ready" ] && cp "$FAKE_HOME/run/$s.ready" "$FAKE_HOME/run/$s.pid"
  done
}

# fake_service_running SERVICE: exit 0 when started and not stopped.
fake_service_running() { [ -f "$FAKE_HOME/run/$1.running" ]; }
