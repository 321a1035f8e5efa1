"""Does every study in a storage teach the next? Tasks arrive one at a time into one storage.

Fast mode over the meta-dataset: trials are answered by the per-task oracles of
``compare_samplers.py``. For every task order (a seeded permutation of the meta-dataset's
tasks), a prior is trained on the first ``--prior-tasks`` tasks; each of the other tasks
then arrives as a ``--trials``-trial study in one storage. With ``--prior DIR`` the prior
is that saved meta-model instead (the shipped one, say, when ``--experience`` holds
another model's fine-tunes) and every task arrives as a study. Samplers:

- ``loop``: MetaPEFTSampler with that prior, learning from every earlier study of its
  storage (its default, ``learn_from_storage=True``);
- ``prior``: the same prior alone (``learn_from_storage=False``);
- ``tpe``: multivariate TPE.

Reported: study k's normalised hypervolume after ``--trials`` trials against k (the number
of earlier studies in the storage), and the paired difference loop - prior (same task,
order and k), with standard errors over orders.

    python benchmarks/sequential_studies.py [--orders 6] [--trials 10] [--prior-tasks 3]

Writes ``NAME.csv``, ``NAME.md`` and ``NAME.png`` under ``--out`` (``--name``, default
``sequential``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import metapeft_optuna  # noqa: F401  (BLAS before mlx)
from metapeft_optuna.atomic import atomic_write_text
from metapeft_optuna.meta import ExperienceBuffer, MetaPEFTSystem
from metapeft_optuna.samplers import MetaPEFTSampler

import numpy as np
import optuna
from build_meta_dataset import recorded_space
from compare_samplers import (
    hv_curve,
    optimise,
    oracle_tasks,
    peft_study,
    reference_pool,
    task_problem,
    write_csv,
)

SAMPLERS = ("loop", "prior", "tpe")
LABELS = {
    "loop": "MetaPEFT, learning from the storage",
    "refit": "MetaPEFT, refitted on prior + storage",
    "prior": "MetaPEFT, prior alone",
    "tpe": "TPE",
}


def sampler_for(
    name: str, seed: int, context: tuple, prior: Path, space, storage, warm_start: int = 3
):
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    chars, info = context
    system = MetaPEFTSystem.load(prior, space)  # a fresh copy: the loop updates it
    if name == "refit":
        seen = list(system.experience_buffer) + list(ExperienceBuffer.from_storages([storage]))
        system = MetaPEFTSystem(space).fit(ExperienceBuffer(seen))
    return MetaPEFTSampler(
        task_characteristics=chars,
        model_info=info,
        search_space=space,
        system=system,
        use_prior=False,
        learn_from_storage=name == "loop",
        n_warm_start=warm_start,
        seed=seed,
    )


def run_order(order: int, groups: dict, problems: dict, args, space, workdir: Path) -> list[dict]:
    """One task order: the prior, then every sampler's sequence of studies."""
    keys = list(np.random.default_rng(order).permutation(sorted(groups)))
    if args.prior:  # a given prior (say the shipped one): every task arrives as a study
        prior, sequence = Path(args.prior), keys
    else:
        prior_keys, sequence = keys[: args.prior_tasks], keys[args.prior_tasks :]
        prior = workdir / f"prior-{order}"
        buffer = ExperienceBuffer(e for k in prior_keys for e in groups[k])
        MetaPEFTSystem(space).fit(buffer).save(prior, include_experience=True)
    rows = []
    for name in args.samplers:
        storage = optuna.storages.InMemoryStorage()
        for k, key in enumerate(sequence):
            first = groups[key][0]
            context = (first.task_characteristics, first.model_info)
            oracle, scale, best_hv, _ = problems[key]
            sampler = sampler_for(
                name, order * 1000 + k, context, prior, space, storage, args.warm_start
            )
            study = peft_study(
                sampler,
                first.task_name,
                context,
                storage,
                f"{k:02d}-{key}",
                objectives=oracle.objectives,
            )
            layers = first.model_info.get("num_layers", 30)
            outcomes = optimise(study, args.trials, space, oracle, layers)
            curve = hv_curve(scale(outcomes), best_hv)
            rows.append(
                {
                    "order": order,
                    "sampler": name,
                    "earlier_studies": k,
                    "task": first.task_name,
                    "hv_first": round(curve[0], 5),
                    "hv_last": round(curve[-1], 5),
                }
            )
    return rows


def mean_se(values: list[float]) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return float(values.mean()), float(se)


def summarise(rows: list[dict], samplers: list[str], trials: int, late: int) -> str:
    """A table of HV@trials by number of earlier studies, and the loop's paired gain."""
    by = defaultdict(dict)
    for r in rows:
        by[(r["order"], r["earlier_studies"])][r["sampler"]] = r["hv_last"]
    ks = sorted({k for _, k in by})
    header = ["earlier studies", *(LABELS[s] for s in samplers)]
    if {"loop", "prior"} <= set(samplers):
        header.append("loop - prior (paired)")
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    for k in ks:
        cells = [str(k)]
        for s in samplers:
            cells.append(
                "{:.3f} ± {:.3f}".format(*mean_se([v[s] for (_, j), v in by.items() if j == k]))
            )
        if "loop - prior (paired)" in header:
            diffs = [v["loop"] - v["prior"] for (_, j), v in by.items() if j == k]
            cells.append("{:+.3f} ± {:.3f}".format(*mean_se(diffs)))
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    text += f"\nHV@{trials}: mean ± standard error over task orders.\n"
    if "loop - prior (paired)" in header:
        # The first study (k = 0) has nothing to learn from: loop = prior there.
        first = {(r["order"], r["earlier_studies"], r["sampler"]): r["hv_first"] for r in rows}
        for label, keep in (
            (f"at least {late}", lambda k: k >= late),
            ("1 or 2", lambda k: 0 < k < 3),
        ):
            keys = [key for key in by if keep(key[1])]
            hv1 = mean_se([first[(*key, "loop")] - first[(*key, "prior")] for key in keys])
            hv = mean_se([by[key]["loop"] - by[key]["prior"] for key in keys])
            text += (
                f"\nWith {label} earlier studies ({len(keys)} studies), loop - prior: "
                f"HV@1 {hv1[0]:+.3f} ± {hv1[1]:.3f}, HV@{trials} {hv[0]:+.3f} ± {hv[1]:.3f}."
            )
        text += "\n"
    return text


def plot(rows: list[dict], samplers: list[str], trials: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in samplers:
        by_k = defaultdict(list)
        for r in rows:
            if r["sampler"] == s:
                by_k[r["earlier_studies"]].append(r["hv_last"])
        ks = sorted(by_k)
        stats = np.array([mean_se(by_k[k]) for k in ks])
        ax.errorbar(ks, stats[:, 0], yerr=stats[:, 1], label=LABELS[s], capsize=3, marker="o")
    ax.set_xlabel("earlier studies in the storage")
    ax.set_ylabel(f"normalised hypervolume after {trials} trials")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experience", nargs="+", default=["studies/meta_dataset.jsonl"])
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=list(LABELS))
    parser.add_argument("--orders", type=int, default=6, help="task orders (seeds 0..N-1)")
    parser.add_argument("--trials", type=int, default=10, help="trials per study")
    parser.add_argument("--prior-tasks", type=int, help="tasks the prior learns (default: 3)")
    parser.add_argument(
        "--prior",
        help="a saved prior to start from instead (e.g. studies/prior, for experience of "
        "another model); every task of --experience then arrives as a study",
    )
    parser.add_argument("--late", type=int, default=8, help="'many earlier studies' from here")
    parser.add_argument(
        "--warm-start", type=int, default=3, help="MetaPEFTSampler's n_warm_start (ablations)"
    )
    parser.add_argument("--out", default="docs/benchmarks")
    parser.add_argument("--name", default="sequential", help="stem of the output files")
    args = parser.parse_args()
    if args.prior and args.prior_tasks is not None:
        parser.error("--prior and --prior-tasks: a given prior learns no task of --experience")
    args.prior_tasks = 0 if args.prior else (3 if args.prior_tasks is None else args.prior_tasks)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    groups = oracle_tasks(args.experience)
    if len(groups) <= args.prior_tasks + 1:
        parser.error(f"{len(groups)} tasks: too few for --prior-tasks {args.prior_tasks}")
    space = recorded_space([e for g in groups.values() for e in g])
    pool = reference_pool(space)
    problems = {key: task_problem(g, space, pool) for key, g in groups.items()}
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as workdir:
        for order in range(args.orders):
            started = time.time()
            rows += run_order(order, groups, problems, args, space, Path(workdir))
            print(f"order {order}: {time.time() - started:.0f} s", flush=True)
    # Every sampler, baselines included, must have run every study: a missing row would
    # make the comparison a lie, so the script fails instead of reporting it.
    expected = args.orders * (len(groups) - args.prior_tasks)
    counts = {name: sum(r["sampler"] == name for r in rows) for name in args.samplers}
    if any(count != expected for count in counts.values()):
        sys.exit(f"studies per sampler {counts}, expected {expected} each: a run failed")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / f"{args.name}.csv", rows)
    summary = summarise(rows, args.samplers, args.trials, args.late)
    atomic_write_text(out / f"{args.name}.md", summary)
    plot(rows, args.samplers, args.trials, out / f"{args.name}.png")
    print("\n" + summary)


if __name__ == "__main__":
    main()
