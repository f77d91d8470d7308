#!/usr/bin/env bash
# ferry's demo: checkpoint a running program and bring it back with its memory intact.
# (Later issues grow this into a live migration between two hosts.)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
FERRY="bin/ferry"
WORK=$(mktemp -d /tmp/ferry-demo-XXXXXX)
export FERRY_STORE="$WORK/store"
restored=""
pid=""
cleanup() {
  for p in $restored $pid; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. Is this host ready? (ferry doctor)"
$FERRY doctor

step "2. ferry run: a counter that keeps its count in memory, in its own pid namespace"
pid=$($FERRY run --name counter --json -- python3 "$PWD/test/workloads/counter.py" "$WORK/count" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).pid))')
for _ in $(seq 50); do [ -s "$WORK/count" ] && break; sleep 0.1; done
sleep 1
echo "workload 'counter' is pid $pid, counting: $(cat "$WORK/count")"

step "3. ferry checkpoint: freeze it into a snapshot (the program stops)"
snap=$($FERRY checkpoint counter)
at_dump=$(cat "$WORK/count")
echo "snapshot $snap; count at checkpoint: $at_dump"
sleep 1
echo "one second later the count is still $(cat "$WORK/count"); the program is $(kill -0 "$pid" 2>/dev/null && echo alive || echo gone)"

step "4. ferry snapshots inspect: what the snapshot holds"
$FERRY snapshots inspect "$snap" | head -n 14

step "5. ferry restore: bring it back (checksums and host checks first)"
restored=$($FERRY restore "$snap")
echo "restored as pid $restored"
sleep 1
now=$(cat "$WORK/count")
echo "count one second after restore: $now (it continued from $at_dump, not from 0)"
[ "$now" -gt "$at_dump" ] || { echo "demo FAILED: the count did not continue" >&2; exit 1; }
printf '\n\033[32mdemo OK: the program was checkpointed and restored with its memory intact\033[0m\n'
