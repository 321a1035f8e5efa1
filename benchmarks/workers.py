"""Do parallel workers and restarts ever run a configuration twice?

Two checks with the tiny model (``metapeft tune --model tiny``, MetaPEFTSampler with its
shipped prior, parity@64):

- **Workers**: ``--workers 4 --trials 40`` on one storage, once on SQLite and once on a
  journal file. Expected: 40 trials ended (complete, or pruned, or failed by their
  configuration: what ``--trials`` counts), 40 distinct configurations (every worker
  derives its randomness from (seed, worker, trial number), and the warm start counts
  the configurations other workers are running).
- **Restart**: one worker on a fresh SQLite storage is killed (SIGKILL) once it has
  finished ``--kill-after`` trials, and the same command is run again to the study's
  total. Expected: no configuration finished before the kill runs again after it.

A configuration is a trial's parameters (method, learning rate, steps, ...). Exits
non-zero when a check fails.

    python benchmarks/workers.py                # about 5 minutes on 2 cores
    python benchmarks/workers.py --trials 20 --kill-after 5
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import metapeft_optuna  # noqa: F401  (preloads BLAS before mlx)
from metapeft_optuna.cli.resume import ended_trials
from metapeft_optuna.meta.storages import open_storage

import optuna
from faults import tune_command

STUDY = "workers"


def tune(storage: str, trials: int, workers: int) -> list[str]:
    return tune_command(storage, trials, STUDY, "--workers", str(workers), "--no-artifacts")


def configuration(trial: optuna.trial.FrozenTrial) -> tuple:
    return tuple(sorted(trial.params.items()))


def ended(storage: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=STUDY, storage=open_storage(storage, create=False))
    return ended_trials(study)


def check_workers(storage: str, label: str, trials: int, workers: int, out: Path) -> bool:
    started = time.perf_counter()
    with open(out / f"{label}.out", "w") as log:
        rc = subprocess.run(tune(storage, trials, workers), stdout=log, stderr=log).returncode
    done = ended(storage)
    distinct = len({configuration(t) for t in done})
    ok = rc == 0 and len(done) == trials and distinct == trials
    print(
        f"| {label}, {workers} workers x --trials {trials} | {len(done)} ended | "
        f"{distinct} distinct | {time.perf_counter() - started:.0f} s | "
        f"{'ok' if ok else f'FAILED (exit {rc}; see {out / label}.out)'} |",
        flush=True,
    )
    return ok


def check_restart(storage: str, trials: int, kill_after: int, out: Path) -> bool:
    started = time.perf_counter()
    with open(out / "restart.out", "w") as log:
        worker = subprocess.Popen(tune(storage, trials, 1), stdout=log, stderr=log)
        before: list[optuna.trial.FrozenTrial] = []
        while worker.poll() is None and len(before) < kill_after:
            time.sleep(0.5)
            try:
                before = ended(storage)
            except (KeyError, FileNotFoundError, ValueError):  # no study (or file) yet
                continue
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        before = ended(storage)  # what finished up to the kill
        rc = subprocess.run(tune(storage, trials, 1), stdout=log, stderr=log).returncode
    finished_before = {t.number for t in before}
    seen = {configuration(t) for t in before}
    after = [t for t in ended(storage) if t.number not in finished_before]
    repeated = sum(configuration(t) in seen for t in after)
    total = len(before) + len(after)
    ok = rc == 0 and repeated == 0 and total == trials
    print(
        f"| SQLite, killed after {len(before)} ended, restarted to {trials} | {total} ended"
        f" | {repeated} repeated | {time.perf_counter() - started:.0f} s | "
        f"{'ok' if ok else f'FAILED (exit {rc}; see {out}/restart.out)'} |",
        flush=True,
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40, help="the study's total")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--kill-after", type=int, default=8, help="ended trials, then SIGKILL")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    out = Path(tempfile.mkdtemp(prefix="metapeft-workers-"))
    print("| run | trials | configurations | wall | check |\n|---|---:|---:|---:|---|")
    ok = check_workers(f"sqlite:///{out / 'study.db'}", "SQLite", args.trials, args.workers, out)
    ok &= check_workers(str(out / "study.log"), "journal", args.trials, args.workers, out)
    ok &= check_restart(f"sqlite:///{out / 'restart.db'}", args.trials // 2, args.kill_after, out)
    print(f"logs and storages in {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
