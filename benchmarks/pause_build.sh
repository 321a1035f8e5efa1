#!/usr/bin/env bash
# Run a command while the meta-dataset build (benchmarks/build_meta_dataset.py or
# benchmarks/task_signal.py) is stopped, so the two never compete for the CPU; the pause is recorded and the build
# redoes any trial it overlapped.
set -u
cd "$(dirname "$0")/.."
pid=$(pgrep -f "benchmarks/(build_meta_dataset|task_signal).py" | head -n1 || true)
start=$(date +%s.%N)
[ -n "$pid" ] && kill -STOP "$pid"
"$@"
rc=$?
[ -n "$pid" ] && kill -CONT "$pid"
end=$(date +%s.%N)
[ -n "$pid" ] && echo "$start $end" >> studies/.build_pauses
exit $rc
