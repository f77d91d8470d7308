#!/usr/bin/env bash
# ferry's demo: live-migrate a Redis server under load between two hosts, without the client
# noticing more than a short pause. The hosts are network namespaces on this machine (a testbed
# with a 1 Gbit/s link); a third one runs the client. Everything is removed at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
FERRY="$ROOT/bin/ferry"
WORK=$(mktemp -d /tmp/ferry-demo-XXXXXX)
export FERRY_TESTBED_DIR="$WORK/testbed" FERRY_TESTBED_PREFIX=ferry-demo-
CLIENT="$ROOT/test/workloads/redis-client.py"
KEYS=${FERRY_DEMO_KEYS:-200000}
SIZE=100
loadpid=""
cleanup() {
  [ -n "$loadpid" ] && kill "$loadpid" 2>/dev/null || true
  "$FERRY" testbed down >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
on() { local h=$1; shift; "$FERRY" testbed exec "$h" -- "$@"; }
json() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s);console.log(process.argv.slice(1).reduce((o,k)=>o?.[k],v))})' "$@"; }

step "1. Is this host ready? (ferry doctor --quick)"
"$FERRY" doctor --quick

step "2. A testbed: hosts h1, h2, h3 (network namespaces on a 1 Gbit/s bridge), each with its own store and agent"
tb=$("$FERRY" testbed up --hosts 3 --rate 1gbit --json)
subnet=$(echo "$tb" | json subnet)
service=${subnet%.0/*}.100
"$FERRY" testbed status

step "3. On h1: redis-server with the service address $service (ferry run --ip)"
on h1 env FERRY_AGENT= "$FERRY" run --name redis --ip "$service" -- /usr/bin/redis-server --port 6379 --save '' --appendonly no --protected-mode no >/dev/null
for _ in $(seq 100); do on h3 python3 "$CLIENT" "$service" 6379 fill 1 1 >/dev/null 2>&1 && break; sleep 0.1; done
on h3 python3 "$CLIENT" "$service" 6379 fill "$KEYS" "$SIZE" >/dev/null
echo "loaded $KEYS keys of $SIZE bytes from h3"

step "4. On h3: a client that INCRs a counter every 5 ms on one TCP connection"
stop="$WORK/stop-load"
on h3 python3 "$CLIENT" "$service" 6379 load "$stop" > "$WORK/load.json" &
loadpid=$!
sleep 2

step "5. ferry migrate redis --to h2 --tcp-established (a job on h1's agent)"
m=$(on h1 "$FERRY" migrate redis --to h2 --tcp-established --json)
sleep 1
touch "$stop"; wait "$loadpid" || true; loadpid=""
echo "$m" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s);console.log(`ok ${r.ok}; downtime ${r.downtimeMs} ms (total ${r.totalMs} ms); ${(r.bytesMoved/2**20).toFixed(1)} MiB moved; phases ${Object.entries(r.phases).map(([k,v])=>k+" "+v+" ms").join(", ")}`)})'

step "6. The client's view, and every key checked on h2"
cat "$WORK/load.json"
pause=$(json longestWaitMs < "$WORK/load.json")
err=$(json error < "$WORK/load.json")
ops=$(json ops < "$WORK/load.json"); counter=$(json counter < "$WORK/load.json")
verified=$(on h3 python3 "$CLIENT" "$service" 6379 verify "$KEYS" "$SIZE" | json verified)
on h2 env FERRY_AGENT= "$FERRY" ps
echo "h1: $(on h1 ip -4 -br addr show dev eth0)"
echo "h2: $(on h2 ip -4 -br addr show dev eth0)"

step "Report"
echo "client-observed pause: $pause ms (one connection, $ops requests, counter $counter: none lost)"
echo "downtime (freeze → running on h2): $(echo "$m" | json downtimeMs) ms; bytes moved: $(echo "$m" | json bytesMoved)"
echo "keys verified on h2: $verified of $KEYS"
[ "$err" = "null" ] && [ "$ops" = "$counter" ] && [ "$verified" = "$KEYS" ] || { echo "demo FAILED" >&2; exit 1; }
printf '\n\033[32mdemo OK: redis moved from h1 to h2 under load; the client kept its connection and every key\033[0m\n'
