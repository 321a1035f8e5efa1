#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU, install the `cuda` extra (mlx[cuda]),
# run the fast tests, a 20-trial tiny-model study and a 5-trial SmolLM2 study on the GPU,
# and print fine-tunes per hour and training tokens/s of each study. The project never
# depends on it; record its figures in docs/performance.md. From the repository root:
#
#     bash benchmarks/device_check.sh            # VENV=... to use another environment
set -euo pipefail
VENV=${VENV:-.venv-cuda}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
. "$VENV/bin/activate"
pip install --quiet -e ".[cuda,dev]" || {
    echo "device_check: could not install the cuda extra (no package registry?)" >&2
    exit 1
}
python - <<'EOF'
import metapeft_optuna  # noqa: F401
import mlx.core as mx
print(f"mlx {mx.__version__}, default device {mx.default_device()}")
if mx.default_device() != mx.gpu:
    raise SystemExit("device_check: MLX sees no GPU; is this the cuda build?")
EOF
python -m pytest -q -x tests/test_peft_matrix.py tests/test_training.py
work=$(mktemp -d)
for study in "tiny 20 parity@64" "smollm2-135m 5 language_id@256"; do
    set -- $study
    start=$(date +%s.%N)
    METAPEFT_PRIOR=none metapeft tune --task "$3" --model "$1" --trials "$2" --quiet \
        --sampler random --pruner none --no-artifacts --storage "sqlite:///$work/$1.db" \
        > "$work/$1.out"
    wall=$(echo "$(date +%s.%N) - $start" | bc)
    python - "$work/$1.db" "$1" "$wall" <<'EOF'
import sys

import optuna

storage, model, wall = sys.argv[1], sys.argv[2], float(sys.argv[3])
(name,) = optuna.get_all_study_names(f"sqlite:///{storage}")
trials = optuna.load_study(study_name=name, storage=f"sqlite:///{storage}").trials
done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
rates = [t.user_attrs["tokens_per_second"] for t in done]
print(f"{model}: {len(done)} fine-tunes in {wall:.0f} s = {3600 * len(done) / wall:.0f} per "
      f"hour; training {sum(rates) / max(1, len(rates)):.0f} tokens/s on average")
EOF
done
