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
while pgrep -f "benchmarks/(build_meta_dataset|task_signal).py|compare_samplers.py --mode live|second_study.py" > /dev/null \
    && [ ! -e studies/.build_idle ]; do
    sleep 1
done
"$@"
