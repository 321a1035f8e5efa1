"""A user's second study in a storage, with real fine-tunes: does it start better?

The experience loop of issue 17, live. Each seed is a user whose prior has seen neither
task (a meta-model trained on ``--experience`` without them, at any size). They tune
``--first``, then ``--second``, in one SQLite storage, with the README's commands:

    METAPEFT_PRIOR=OUT/prior metapeft tune --task FIRST --storage sqlite:///OUT/seed0.db ...
    METAPEFT_PRIOR=OUT/prior metapeft tune --task SECOND --storage sqlite:///OUT/seed0.db ...

MetaPEFTSampler reads every other study of its storage, so the second study learns from
the first. The counterfactual is the same second study run as the user's first one, in a
storage of its own (``OUT/alone0.db``), with the same prior, seed and command.

Reported: the second task's normalised hypervolume after 1..``--trials`` trials (the best
known front is that of every trial of both arms; quality is the task's own objective,
then peak memory and training time), paired by seed, and each arm's first trial.

    python benchmarks/second_study.py --first emoji_name@256 \\
        --second unicode_name@256 [--model smollm2-135m] [--seeds 3] [--trials 5]

Resumable: a rerun continues each study where it stopped (``--trials`` is a study's total,
as in ``metapeft tune``). It refuses to run beside the meta-dataset build (both are timed)
unless the build is held (``bash benchmarks/pause_build.sh python benchmarks/second_study.py
...``, for short runs) and, between studies, waits while ``pause_build.sh`` holds the machine.
Writes ``second_study_MODEL.csv`` and ``second_study_MODEL.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import metapeft_optuna  # noqa: F401  (BLAS before mlx)
from metapeft_optuna import schema
from metapeft_optuna.atomic import atomic_write_text
from metapeft_optuna.cli.resume import ended_trials
from metapeft_optuna.meta import ExperienceBuffer, MetaPEFTSystem
from metapeft_optuna.tasks import load_task

import numpy as np
import optuna
from build_meta_dataset import IDLE, wait_while_held
from compare_samplers import build_running, normalised_curves, trial_targets, write_csv
from sequential_studies import mean_se

ARMS = {
    "second": "after the first study, in its storage",
    "alone": "alone in its storage (the user's first)",
}


def metapeft(*argv: str, prior: Path | str) -> None:
    """Run a ``metapeft`` command as a user would, with ``prior`` as their prior."""
    command = [sys.executable, "-c", "from metapeft_optuna.cli import main; main()", *argv]
    env = {**os.environ, "METAPEFT_PRIOR": str(prior)}  # "none": no prior
    subprocess.run(command, env=env, check=True)


def base_name(spec: str) -> str:
    """A task's name at any size: ``reverse_word`` for ``reverse_word@256``."""
    return load_task(spec).name.split("@")[0]


def without_tasks(buffer: ExperienceBuffer, specs: list[str]) -> ExperienceBuffer:
    """``buffer`` without the tasks of ``specs`` at any size (``reverse_word@256`` also
    drops ``reverse_word@64``)."""
    names = {base_name(spec) for spec in specs}
    return ExperienceBuffer(e for e in buffer if e.task_name.split("@")[0] not in names)


def storage(folder: Path, arm: str, seed: int) -> Path:
    """One arm's SQLite file for one seed: the user's storage (``seed0.db``: the first
    study, then the second) or the second study's own (``alone0.db``)."""
    return folder / f"{'seed' if arm == 'second' else 'alone'}{seed}.db"


def check_storages(args: argparse.Namespace, folder: Path) -> None:
    """Refuse a folder left by another pair of tasks: its studies would be experience."""
    allowed = {"second": {args.first, args.second}, "alone": {args.second}}
    for seed in range(args.seeds):
        for arm, names in allowed.items():
            path = storage(folder, arm, seed)
            if path.exists():
                found = {s.study_name for s in optuna.get_all_study_summaries(f"sqlite:///{path}")}
                if found - names:
                    sys.exit(
                        f"{path}: holds the studies {sorted(found - names)}, which this run's "
                        "samplers would learn from; give another --storage-dir"
                    )


def train_prior(args: argparse.Namespace, out: Path) -> Path:
    """The users' prior: the experience without either task, at any size (trained once;
    ``--prior`` gives one instead). Either way it must not know the tasks.

    Raises:
        SystemExit: ``--prior`` holds no meta-model, or the prior knows either task.
    """
    prior = Path(args.prior) if args.prior else out / "prior"
    if args.prior and not (prior / "meta_model.json").is_file():
        sys.exit(f"--prior {prior}: no saved meta-model there (meta_model.json)")
    if (prior / "meta_model.json").is_file():
        names = {base_name(args.first), base_name(args.second)}
        known = {t["name"].split("@")[0] for t in MetaPEFTSystem.load(prior).task_summaries_}
        if names & known:
            sys.exit(f"{prior}: the prior knows {sorted(names & known)}; give one without them")
        return prior
    buffer = ExperienceBuffer.from_storages(args.experience)
    kept = without_tasks(buffer, [args.first, args.second])
    print(f"prior: {len(kept)} of {len(buffer)} experiences (without {args.first}, {args.second})")
    sources = out / "prior_experience.jsonl"
    kept.export_jsonl(sources)
    metapeft("prior", "train", "--only", "--experience", str(sources), "--out", str(prior),
             prior="none")  # fmt: skip
    return prior


def tune(args: argparse.Namespace, prior: Path, task: str, path: Path, seed: int, n: int):
    """One study of ``n`` trials in the SQLite file ``path`` (its total: a rerun resumes it)."""
    if not args.held:
        wait_while_held()
    metapeft(
        *("tune", "--task", task, "--model", args.model, "--sampler", "meta"),
        *("--storage", f"sqlite:///{path}", "--study-name", task, "--seed", str(seed)),
        *("--trials", str(n), "--eval-examples", str(args.eval_examples)),
        *("--out-dir", str(path.parent / "plots"), "--no-artifacts", "--quiet"),
        prior=prior,
    )


def finished(path: Path, task: str, n: int) -> list[optuna.trial.FrozenTrial]:
    """The study's first ``n`` trials that ran to an end (what ``--trials`` counts)."""
    return ended_trials(optuna.load_study(study_name=task, storage=f"sqlite:///{path}"))[:n]


def first_trial(trial: optuna.trial.FrozenTrial, objectives: tuple[str, ...]) -> dict:
    """The first trial's method, quality ± standard error, MB and seconds (None: no values)."""
    metrics = trial.user_attrs.get(schema.TRIAL_METRICS) or {}
    values = dict(zip(objectives, trial.values or [None] * len(objectives)))
    return {
        "first_method": trial.params.get("method"),
        "first_quality": values[objectives[0]],
        "first_quality_se": metrics.get(f"{objectives[0]}_se"),
        "first_mb": values["peak_memory_mb"],
        "first_seconds": values["train_seconds"],
    }


def results(args: argparse.Namespace, out: Path) -> list[dict]:
    """One row per (arm, seed, trials): the second task's normalised hypervolume."""
    runs = {
        (arm, seed): finished(storage(out, arm, seed), args.second, args.trials)
        for seed in range(args.seeds)
        for arm in ARMS
    }
    any_study = optuna.load_study(
        study_name=args.second, storage=f"sqlite:///{storage(out, 'second', 0)}"
    )
    objectives = schema.study_objectives(any_study)
    targets = {key: trial_targets(trials, objectives) for key, trials in runs.items()}
    # Either arm of a seed without one completed trial (the baseline included) leaves
    # nothing to compare: fail rather than report a hypervolume of 0.
    if empty := [key for key, t in targets.items() if not np.isfinite(t).all(axis=1).any()]:
        sys.exit(f"{args.second}: no completed trial in (arm, seed) {empty}; nothing to compare")
    curves = normalised_curves(targets, objectives)
    rows = []
    for (arm, seed), curve in curves.items():
        start = first_trial(runs[arm, seed][0], objectives)
        for n, value in enumerate(curve, start=1):
            rows.append({"arm": arm, "seed": seed, "trials": n, "normalised_hv": value, **start})
    return rows


def summarise(rows: list[dict], args: argparse.Namespace) -> str:
    """HV@k by arm with the paired difference, and each arm's first trials."""
    hv = {(r["arm"], r["seed"], r["trials"]): r["normalised_hv"] for r in rows}
    lines = [
        f"{args.second} after {args.first} ({args.model}, {args.seeds} seeds; mean ± "
        "standard error over seeds)\n",
        f"| trials | {ARMS['second']} | {ARMS['alone']} | difference (paired) |",
        "|---:|---:|---:|---:|",
    ]
    for k in range(1, args.trials + 1):
        cells = [mean_se([hv[arm, s, k] for s in range(args.seeds)]) for arm in ARMS]
        diff = mean_se([hv["second", s, k] - hv["alone", s, k] for s in range(args.seeds)])
        lines.append(
            f"| {k} | {cells[0][0]:.3f} ± {cells[0][1]:.3f} | {cells[1][0]:.3f} ± "
            f"{cells[1][1]:.3f} | {diff[0]:+.3f} ± {diff[1]:.3f} |"
        )
    lines += ["", "| arm | seed | first trial | quality ± se | MB | train s |"]
    lines.append("|---|---:|---|---:|---:|---:|")
    for r in rows:
        if r["trials"] == 1:
            quality = "pruned or failed"
            if r["first_quality"] is not None:
                quality = f"{r['first_quality']:.3f} ± {r['first_quality_se'] or float('nan'):.3f}"
            mb = f"{r['first_mb']:.0f}" if r["first_mb"] is not None else "-"
            seconds = f"{r['first_seconds']:.1f}" if r["first_seconds"] is not None else "-"
            lines.append(
                f"| {r['arm']} | {r['seed']} | {r['first_method']} | {quality} | {mb} | {seconds} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", required=True, help="the task of the user's first study")
    parser.add_argument("--second", required=True, help="the task of their second study")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--experience", nargs="+", default=["studies/meta_dataset_v2.jsonl"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-trials", type=int, default=8, help="trials of the first study")
    parser.add_argument("--trials", type=int, default=5, help="trials of the second study")
    parser.add_argument("--eval-examples", type=int, default=400)
    parser.add_argument("--storage-dir", default="studies/second_study")
    parser.add_argument("--prior", help="a trained prior to use (default: train one)")
    parser.add_argument("--out", default="docs/benchmarks")
    args = parser.parse_args()
    if base_name(args.first) == base_name(args.second):
        parser.error("--first and --second must be two different tasks")
    args.held = os.path.exists(IDLE)  # run by pause_build.sh: its hold is this run's
    if build_running() and not args.held:
        sys.exit(
            "second_study.py: the meta-dataset build is running and would share the CPU with "
            "the timed fine-tunes; stop it, or hold it for a short run: "
            "bash benchmarks/pause_build.sh python benchmarks/second_study.py ..."
        )
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storages = Path(args.storage_dir)
    storages.mkdir(parents=True, exist_ok=True)
    check_storages(args, storages)
    prior = train_prior(args, storages)
    for seed in range(args.seeds):  # one user at a time: a stopped run leaves whole seeds
        mine = storage(storages, "second", seed)
        tune(args, prior, args.first, mine, seed, args.first_trials)
        # The first study is complete before the second starts beside it.
        tune(args, prior, args.second, mine, seed, args.trials)
        tune(args, prior, args.second, storage(storages, "alone", seed), seed, args.trials)
    rows = results(args, storages)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / f"second_study_{args.model}.csv", rows)
    summary = summarise(rows, args)
    atomic_write_text(out / f"second_study_{args.model}.md", summary)
    print("\n" + summary)


if __name__ == "__main__":
    main()
