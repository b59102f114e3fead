#!/usr/bin/env bash
# Builds the image and checks that it runs as deployed: only runtime files inside, /healthz,
# docker health, a non-root process, and a `docker stop` with an /events stream open that
# ends the stream with `event: done` and exits 0 in under STOP_LIMIT seconds.
#
#   npm run image:check        (or: bash scripts/image-check.sh)
#
# Uses the Docker engine that answers, else (as root) a private one it starts and stops
# (scripts/docker-env.sh). The container shares the host's network and listens on
# 127.0.0.1 only. Prints PASS/FAIL lines; exit 0 only when every check passed.
# Settings: STOP_LIMIT (3 s), WAIT_S (60 s per wait), NODE_IMAGE (the base to build on).
set -Eeuo pipefail
cd "$(dirname "$0")/.."
source scripts/docker-env.sh

STOP_LIMIT=${STOP_LIMIT:-3}
WAIT_S=${WAIT_S:-60}
NAME="status-stream-check-$$"
IMAGE="status-stream-check:$$"
OUT=$(mktemp -d /tmp/status-stream-check.XXXXXX)
passed=0 failed=0 curl_pid='' started=$(date +%s.%N)

pass() { passed=$((passed + 1)); echo "PASS  $*"; }
fail() { failed=$((failed + 1)); echo "FAIL  $*"; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }
running() { [ "$("$DOCKER" inspect -f '{{.State.Running}}' "$NAME" 2>/dev/null)" = true ]; }
logs() { "$DOCKER" logs --tail 20 "$NAME" 2>&1 | sed 's/^/  | /'; }

finish() {
  local rc=$?
  set +e
  [ -n "$curl_pid" ] && kill -TERM "$curl_pid" 2>/dev/null && wait "$curl_pid" 2>/dev/null
  "$DOCKER" rm -f "$NAME" >/dev/null 2>&1
  "$DOCKER" rmi -f "$IMAGE" >/dev/null 2>&1
  docker_env_down
  rm -rf "$OUT"
  [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
  echo "image-check: $passed passed, $failed failed ($(elapsed "$started") s)"
  [ "$failed" -eq 0 ] && exit 0
  exit 1
}
trap finish EXIT
trap 'exit 130' INT TERM

command -v curl >/dev/null || docker_env_apt curl
t=$(date +%s.%N)
docker_env_up || { fail "no Docker engine (see above)"; exit 1; }
docker_env_base || { fail "no Node base image (see above)"; exit 1; }
echo "engine and base image $NODE_BASE ready in $(elapsed "$t") s"

t=$(date +%s.%N)
if "$DOCKER" build -q --network none --build-arg "NODE_IMAGE=$NODE_BASE" -t "$IMAGE" . >"$OUT/build.log" 2>&1; then
  pass "docker build on $NODE_BASE ($(elapsed "$t") s)"
else
  tail -n 20 "$OUT/build.log"; fail "docker build"; exit 1
fi

# What the image holds: package.json, page.html and the *.ts modules, no test and no doc;
# and whether the node user can write to the STATE_DIR mount point.
"$DOCKER" run --rm --network none --entrypoint node "$IMAGE" -e "
  const fs = require('node:fs');
  for (const f of fs.readdirSync('.', { recursive: true, withFileTypes: true }))
    if (f.isFile()) console.log(require('node:path').relative('.', f.parentPath + '/' + f.name));
  try { fs.accessSync('/var/lib/status-stream', fs.constants.W_OK); console.log('state-dir: writable'); } catch {}
" >"$OUT/files" 2>&1 || true
{ grep -v '^state-dir: ' "$OUT/files" || true; } | sort >"$OUT/app-files"
others=$({ grep -Ev '^(package\.json|([A-Za-z0-9_.-]+/)*[A-Za-z0-9_.-]+\.(ts|html))$' "$OUT/app-files"
  grep -E '\.test\.ts$' "$OUT/app-files"; } | tr '\n' ' ' || true)
if [ -z "$others" ] && grep -qx server.ts "$OUT/app-files" && grep -qx package.json "$OUT/app-files"; then
  pass "/app holds only runtime files: $(tr '\n' ' ' <"$OUT/app-files")"
else
  fail "/app should hold package.json, *.html and *.ts modules only; besides: ${others:-(server.ts missing)}"
fi
if grep -qx 'state-dir: writable' "$OUT/files"; then pass "/var/lib/status-stream is writable by the node user"
else fail "/var/lib/status-stream is not writable by the node user"; fi

port=$(node -e "const s = require('node:net').createServer().listen(0, '127.0.0.1', () => {
  console.log(s.address().port); s.close(); });")
"$DOCKER" run -d --name "$NAME" --network host -e HOST=127.0.0.1 -e "PORT=$port" --health-interval 1s \
  "$IMAGE" >/dev/null || { fail "docker run"; exit 1; }
url="http://127.0.0.1:$port"

t=$(date +%s.%N) ok=0
while running && awk -v a="$t" -v b="$(date +%s.%N)" -v w="$WAIT_S" 'BEGIN { exit !(b - a < w) }'; do
  curl -fsS -m 2 -o /dev/null "$url/healthz" 2>/dev/null && { ok=1; break; }
  sleep 0.1
done
if [ "$ok" = 1 ]; then pass "GET /healthz 2xx after $(elapsed "$t") s"
else fail "GET /healthz: no 2xx in $WAIT_S s"; logs; fi

t=$(date +%s.%N) health=''
for ((i = 0; i < WAIT_S * 4; i++)); do
  health=$("$DOCKER" inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$NAME")
  [ "$health" = healthy ] || [ "$health" = unhealthy ] || ! running && break
  sleep 0.25
done
if [ "$health" = healthy ]; then pass "docker health: healthy after $(elapsed "$t") s"
else fail "docker health: ${health:-none}"; "$DOCKER" inspect -f '{{json .State.Health}}' "$NAME" | cut -c1-400; fi

pid=$("$DOCKER" inspect -f '{{.State.Pid}}' "$NAME")
uid=$(awk '/^Uid:/ { print ($2 == 0 || $3 == 0) ? 0 : $2 }' "/proc/$pid/status" 2>/dev/null ||
  "$DOCKER" top "$NAME" -o uid 2>/dev/null | sed -n 2p)
if [ -n "$uid" ] && [ "$uid" != 0 ]; then pass "the main process runs as uid $uid, not root"
else fail "the main process runs as root or unknown (uid '${uid}')"; fi

curl -sN -m 30 -H 'Accept: text/event-stream' "$url/events" >"$OUT/stream" 2>/dev/null &
curl_pid=$!
t=$(date +%s.%N) ok=0
for ((i = 0; i < WAIT_S * 20; i++)); do
  grep -q '^data:' "$OUT/stream" && { ok=1; break; }
  kill -0 "$curl_pid" 2>/dev/null || break
  sleep 0.05
done
if [ "$ok" = 1 ]; then pass "GET /events: a data: line after $(elapsed "$t") s"
else fail "GET /events: no data: line"; head -c 400 "$OUT/stream"; fi

t=$(date +%s.%N)
"$DOCKER" stop "$NAME" >/dev/null
stop_s=$(elapsed "$t")
if awk -v s="$stop_s" -v l="$STOP_LIMIT" 'BEGIN { exit !(s < l) }'; then
  pass "docker stop with the stream open: $stop_s s"
else fail "docker stop with the stream open: $stop_s s (limit $STOP_LIMIT s)"; logs; fi

for ((i = 0; i < 30; i++)); do kill -0 "$curl_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$curl_pid" 2>/dev/null; then kill -TERM "$curl_pid"; wait "$curl_pid" 2>/dev/null || true; curl_rc=open
else wait "$curl_pid" && curl_rc=0 || curl_rc=$?; fi
curl_pid=''
if grep -q '^event: done' "$OUT/stream"; then pass "the stream got event: done"
else fail "the stream got no event: done; its end:"; tail -c 300 "$OUT/stream"; fi
if [ "$curl_rc" = 0 ]; then pass "the server ended the stream (curl exited 0 by itself)"
else fail "the stream was not ended by the server (curl: $curl_rc; 18 = cut off, open = still open 3 s later)"; fi

code=$("$DOCKER" inspect -f '{{.State.ExitCode}}' "$NAME")
if [ "$code" = 0 ]; then pass "exit code 0"; else fail "exit code $code (137: killed after the stop timeout)"; logs; fi

size=$("$DOCKER" image inspect -f '{{.Size}}' "$IMAGE")
base=$("$DOCKER" image inspect -f '{{.Size}}' "$NODE_BASE")
echo "image: $((size / 1000000)) MB, of which the project's layers $(((size - base) / 1000)) kB"
