#!/usr/bin/env bash
# Run a command while the meta-dataset build (benchmarks/build_meta_dataset.py or
# benchmarks/task_signal.py) or a live sampler comparison (benchmarks/compare_samplers.py
# --mode live) holds between two trials (benchmarks/second_study.py: between two studies),
# so the two never compete for the CPU: the running trial finishes first (timings are
# objectives), the next one waits until the command is done.
set -u
cd "$(dirname "$0")/.."
touch studies/.build_hold
trap 'rm -f studies/.build_hold' EXIT
# Python running one of them (anchored: this script's own command line may name one).
holders='^[^ ]*python[^ ]* benchmarks/((build_meta_dataset|task_signal|second_study)\.py|compare_samplers\.py --mode live)'
while pgrep -f "$holders" > /dev/null && [ ! -e studies/.build_idle ]; do
    sleep 1
done
"$@"
