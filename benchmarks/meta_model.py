"""Leave-one-task-out quality of the meta-model on recorded experience.

For each source task the meta-model is trained on the other tasks only. Printed per task:
Spearman correlation between predicted and actual quality (the task's quality objective,
accuracy or val_loss; zero-shot, and after adapting on the task's first few trials), the
same for a task-agnostic surrogate (task features zeroed), zero-shot Spearman for peak
memory and training time, and the first two methods of the method selector and of what a
recommendation follows (selector x surrogate) against the task's best method, next to the
majority-method baseline. Held-out tasks are shared among ``--workers`` processes (each
fit is seeded, so the figures do not depend on how they are shared). Run:

    python benchmarks/meta_model.py [--experience studies/meta_dataset_v2.jsonl] [--shots 5]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from multiprocessing import get_context

import metapeft_optuna  # noqa: F401
from metapeft_optuna.cli.workers import threads_per_worker
from metapeft_optuna.meta import ExperienceBuffer, SurrogateConfig
from metapeft_optuna.meta.loto import HeldOutTask, LeaveOneTaskOut, leave_one_task_out

from build_meta_dataset import recorded_space


def held_out(experience: list[str], shots: int, tasks: list[str]) -> list[HeldOutTask]:
    """Leave-one-task-out results for ``tasks`` (names), each against all the others."""
    buffer = ExperienceBuffer.from_storages(experience)
    report = leave_one_task_out(
        buffer,
        config=SurrogateConfig(),
        shots=shots,
        search_space=recorded_space(list(buffer)),
        tasks=tasks,
    )
    return report.tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--experience",
        nargs="+",
        default=["studies/meta_dataset_v2.jsonl"],
        help="storages (URLs) or JSON Lines exports",
    )
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--json", help="also write the full report here")
    parser.add_argument(
        "--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes"
    )
    args = parser.parse_args()
    buffer = ExperienceBuffer.from_storages(args.experience)
    print(f"{len(buffer.complete())} complete experiences on {len(buffer.by_task())} tasks\n")
    start = time.time()
    names = sorted({group[0].task_name for group in buffer.by_task().values()})
    shares = [names[i :: args.workers] for i in range(args.workers)]
    # Each worker gets its share of the cores (threads that outnumber the cores spin
    # against each other), and is spawned, not forked: forking a process whose MLX and
    # BLAS threads run is unsafe.
    threads = str(threads_per_worker(args.workers))
    os.environ.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        parts = pool.map(partial(held_out, args.experience, args.shots), shares)
        order = {name: i for i, name in enumerate(names)}
        tasks = sorted((t for part in parts for t in part), key=lambda t: order[t.task])
    report = LeaveOneTaskOut(tasks, shots=args.shots)
    print(
        "| held-out task | trials | quality | Spearman | task-agnostic | after "
        f"{args.shots} shots | agnostic after {args.shots} | memory | time | selected "
        "(runner-up) | recommended (runner-up) | best (tied within noise) | majority |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---|---|---|---|")
    for t in report.tasks:
        print(
            f"| {t.task} | {t.trials} | {t.quality} | {t.spearman:.3f} | "
            f"{t.spearman_agnostic:.3f} | {t.spearman_adapted:.3f} | "
            f"{t.spearman_adapted_agnostic:.3f} | {t.spearman_memory:.3f} | "
            f"{t.spearman_time:.3f} | {t.selected_method} ({t.selected_probability:.2f}; "
            f"{t.second_method}) | {t.recommended_method} ({t.recommended_second}) | "
            f"{t.best_method or '-'} ({', '.join(t.tied_methods)}) | "
            f"{t.majority_method} |"
        )
    s = report.summary()
    print(
        f"\nmean Spearman: {s['spearman']:.3f} (task-agnostic {s['spearman_agnostic']:.3f}); "
        f"after {args.shots} shots {s['spearman_adapted']:.3f} "
        f"(task-agnostic {s['spearman_adapted_agnostic']:.3f})"
    )
    print(
        f"zero-shot Spearman for peak memory {s['spearman_memory']:.3f}, training time "
        f"{s['spearman_time']:.3f}"
    )
    print(
        f"method selection on the {s['tasks_with_a_best_method']} tasks with a best method: "
        f"top-1 {s['selection_top1']:.3f}, top-2 {s['selection_top2']:.3f} (majority-method "
        f"baseline {s['majority_top1']:.3f}, {s['majority_top2']:.3f}); mean calibrated "
        f"confidence in the selected method {s['selected_probability']:.2f}"
    )
    print(
        "counting a method tied with the best within 1.96 standard errors a hit: top-1 "
        f"{s['selection_top1_within_noise']:.3f}, top-2 {s['selection_top2_within_noise']:.3f}"
        f" (majority {s['majority_top1_within_noise']:.3f}, "
        f"{s['majority_top2_within_noise']:.3f})"
    )
    print(
        "what a recommendation follows (selector x surrogate): top-1 "
        f"{s['recommendation_top1']:.3f}, top-2 {s['recommendation_top2']:.3f}; within noise "
        f"{s['recommendation_top1_within_noise']:.3f}, "
        f"{s['recommendation_top2_within_noise']:.3f}"
    )
    print(f"({time.time() - start:.0f} s)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report.to_dict(), fh, indent=1)


if __name__ == "__main__":
    main()
