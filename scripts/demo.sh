#!/usr/bin/env bash
# ferry's demo: checkpoint a running program and bring it back with its memory intact.
# (Later issues grow this into a live migration between two hosts.)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
FERRY=bin/ferry
WORK=$(mktemp -d /tmp/ferry-demo-XXXXXX)
restored=""
cleanup() {
  [ -n "$restored" ] && kill -9 "$restored" 2>/dev/null || true
  [ -n "${launcher:-}" ] && kill -9 "$launcher" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. Is this host ready? (ferry doctor)"
$FERRY doctor

step "2. Start a workload: a counter that keeps its count in memory, as pid 1 of its own pid namespace"
unshare --pid --fork setsid python3 test/workloads/counter.py "$WORK/count" </dev/null >/dev/null 2>&1 &
launcher=$!
for _ in $(seq 50); do [ -s "$WORK/count" ] && break; sleep 0.1; done
pid=$(cat "/proc/$launcher/task/$launcher/children" | awk '{print $1}')
sleep 1
echo "workload pid $pid (host), counting: $(cat "$WORK/count")"

step "3. Checkpoint it (CRIU stops it and writes its state to disk)"
mkdir -p "$WORK/images"
$FERRY criu dump --pid "$pid" --images-dir "$WORK/images"
at_dump=$(cat "$WORK/count")
echo "count at checkpoint: $at_dump"
sleep 1
echo "one second later the count is still $(cat "$WORK/count") — the program is gone: $(kill -0 "$pid" 2>/dev/null && echo alive || echo not running)"
du -sh "$WORK/images" | awk '{print "images: " $1}'

step "4. Restore it"
out=$($FERRY criu restore --images-dir "$WORK/images" --json)
restored=$(node -e 'console.log(JSON.parse(process.argv[1]).pid)' "$out")
echo "restored as pid $restored"
sleep 1
now=$(cat "$WORK/count")
echo "count one second after restore: $now (it continued from $at_dump, not from 0)"
[ "$now" -gt "$at_dump" ] || { echo "demo FAILED: the count did not continue" >&2; exit 1; }
printf '\n\033[32mdemo OK: the program was checkpointed and restored with its memory intact\033[0m\n'
