"""``metapeft tune --workers N``: N worker processes share one study, each with its share of
the cores.

A study's trials are independent fine-tunes, and one fine-tune keeps two cores only partly
busy: MLX's element-wise CPU kernels are single-threaded, so the second BLAS thread waits
during a large part of every step (``docs/performance.md``). Workers with one BLAS thread
each use every core, measured by ``benchmarks/study_throughput.py``. Each worker is the
same ``metapeft tune`` command on the same storage (as parallel workers on several
machines are), pinned with ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS``; ``train_seconds``
is then measured at that many threads, which each trial records (``cpu_threads``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence

from .resume import Interrupted, stop_signals

RUN_CLI = "import sys; from metapeft_optuna.cli import main; sys.exit(main())"


def worker_command(argv: Sequence[str], index: int) -> list[str]:
    """``argv`` (a ``metapeft tune`` command line) as worker ``index``'s command: one
    worker, its own sampler seed, no summary (the parent prints it), no progress bar."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            kept.append(arg)
    worker = ["--workers", "1", "--as-worker", str(index), "--quiet"]
    return [sys.executable, "-c", RUN_CLI, *kept, *worker]


def threads_per_worker(workers: int) -> int:
    """BLAS threads for each of ``workers`` processes: the cores shared out, at least 1
    (oversubscribed MKL threads wait on each other, docs/performance.md)."""
    return max(1, (os.cpu_count() or 1) // workers)


def run_workers(argv: Sequence[str], workers: int) -> int:
    """Run ``workers`` worker processes of the command ``argv`` and wait for them; SIGINT
    and SIGTERM reach every worker (each fails its running trial) and end with 130/143.

    Returns:
        0, or the first non-zero exit code of a worker.
    """
    threads = str(threads_per_worker(workers))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    print(f"{workers} workers, {threads} thread(s) each", flush=True)
    procs = [subprocess.Popen(worker_command(argv, i), env=env) for i in range(workers)]
    try:
        with stop_signals():
            codes = [p.wait() for p in procs]
    except Interrupted as stop:
        for p in procs:  # Ctrl-C reached them from the terminal; a SIGTERM did not
            if p.poll() is None and stop.signum == signal.SIGTERM:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait()
        print(f"\nstopped by {stop}: run the same command to resume.")
        return 128 + stop.signum
    return next((c for c in codes if c != 0), 0)
