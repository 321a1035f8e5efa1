"""How much does one task's accuracy landscape say about another's? A ceiling for transfer.

For every source task a random forest is fitted to its own trials (configuration ->
accuracy); it then ranks every other task's trials. Printed: the matrix of Spearman
correlations (row: the task whose forest predicts, column: the task predicted), each
target's mean over sources, and, for each target, the Spearman of two zero-shot
ensembles of the other tasks' forests: uniform weights (what a task-agnostic model can
do) and weights from meta-feature similarity, exp(-(d / bandwidth)^2) with d the distance
between standardised task context vectors (what knowing the task can add). If the
similarity-weighted ensemble does not beat the uniform one, no task-aware surrogate can be
expected to beat a task-agnostic one on this experience. Last, the few-shot view used by
transfer HPO (TST-R, Wistuba et al. 2016; RGPE, Feurer et al. 2018): the target's first
``--shots`` trials are revealed, each source forest is weighted by its Kendall tau on them
(negative taus count 0), and both ensembles are scored on the remaining trials, averaged
over ``--repeats`` random draws of the shots. And a bound for a first trial chosen without
any trial of the target: the configuration (among the other tasks' recorded ones) with the
best mean accuracy, as a fraction of each source forest's best, over the other tasks'
forests; how close the target's forest puts it to the best it knows (the sampler
benchmark's definition of "best known accuracy"). Run:

    python benchmarks/task_transfer.py [--experience studies/meta_dataset.jsonl]
"""

from __future__ import annotations

import argparse

import metapeft_optuna  # noqa: F401
from metapeft_optuna.meta import ExperienceBuffer
from metapeft_optuna.meta.features import experience_arrays
from metapeft_optuna.training import PEFTSearchSpace

import numpy as np
from build_meta_dataset import recorded_space
from compare_samplers import reference_pool  # the sampler benchmark's "best known"
from scipy.stats import kendalltau, spearmanr
from sklearn.ensemble import RandomForestRegressor


def rho(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(spearmanr(predicted, actual).correlation)


def few_shot(predictions: np.ndarray, y: np.ndarray, shots: int, repeats: int) -> list[float]:
    """Mean Spearman on the unrevealed trials of the uniform and the tau-weighted ensemble."""
    rng = np.random.default_rng(0)
    uniform, weighted = [], []
    for _ in range(repeats):
        order = rng.permutation(len(y))
        seen, rest = order[:shots], order[shots:]
        taus = np.array([kendalltau(p[seen], y[seen]).statistic for p in predictions])
        weights = np.clip(np.nan_to_num(taus), 0, None)
        if weights.sum() == 0:
            weights = np.ones_like(weights)
        uniform.append(rho(predictions[:, rest].mean(axis=0), y[rest]))
        weighted.append(rho(weights @ predictions[:, rest] / weights.sum(), y[rest]))
    return [float(np.nanmean(uniform)), float(np.nanmean(weighted))]


def best_default(data: dict, forests: dict, space: PEFTSearchSpace) -> None:
    """How much of each task's best known accuracy the other tasks' best default reaches."""
    pool = np.stack([space.encode(c) for c in reference_pool(space)])
    print("\n| target | best default's accuracy | best known | ratio |\n|---|---:|---:|---:|")
    ratios = []
    for target, (_, x, _) in data.items():
        candidates = np.vstack([data[s][1] for s in data if s != target])
        scores = []
        for source in data:
            if source != target:
                predicted = forests[source].predict(candidates)
                scores.append(predicted / max(predicted.max(), 1e-9))
        pick = candidates[int(np.argmax(np.mean(scores, axis=0)))]
        best = forests[target].predict(np.vstack([pool, x])).max()
        reached = forests[target].predict(pick[None])[0]
        ratios.append(reached / best)
        print(f"| {target} | {reached:.3f} | {best:.3f} | {ratios[-1]:.2f} |")
    print(
        f"best default reaches >= 95% of the best known accuracy on "
        f"{sum(r >= 0.95 for r in ratios)}/{len(ratios)} tasks (mean ratio {np.mean(ratios):.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experience", nargs="+", default=["studies/meta_dataset.jsonl"])
    parser.add_argument("--bandwidths", type=float, nargs="+", default=[2.0, 5.0])
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    experience = ExperienceBuffer.from_storages(args.experience)
    space = recorded_space(list(experience))
    groups = experience.by_task()
    data = {}
    for _, experiences in sorted(groups.items()):
        contexts, configs, targets = experience_arrays(experiences, space)
        if np.ptp(targets[:, 0]) > 0:  # a task whose accuracy never varies ranks nothing
            data[experiences[0].task_name] = (contexts[0], configs, targets[:, 0])
    names = list(data)
    forests = {
        name: RandomForestRegressor(200, min_samples_leaf=2, random_state=0).fit(x, y)
        for name, (_, x, y) in data.items()
    }
    contexts = np.stack([data[n][0] for n in names])
    scale = contexts.std(axis=0) + 1e-9
    matrix = np.full((len(names), len(names)), np.nan)
    print(f"{len(names)} tasks whose accuracy varies\n")
    rows = []
    for j, target in enumerate(names):
        _, x, y = data[target]
        sources = [i for i in range(len(names)) if i != j]
        predictions = np.stack([forests[names[i]].predict(x) for i in sources])
        matrix[sources, j] = [rho(p, y) for p in predictions]
        distance = np.linalg.norm((contexts[sources] - contexts[j]) / scale, axis=1)
        row = [rho(predictions.mean(axis=0), y)]
        for bandwidth in args.bandwidths:
            weights = np.exp(-((distance / bandwidth) ** 2)) + 1e-12
            row.append(rho(weights @ predictions / weights.sum(), y))
        row += few_shot(predictions, y, args.shots, args.repeats)
        rows.append(row)
    print(
        "| target | mean over sources | uniform ensemble | "
        + " | ".join(f"similarity-weighted (bandwidth {b:g})" for b in args.bandwidths)
        + f" | {args.shots} shots: uniform | {args.shots} shots: tau-weighted |"
    )
    print("|---|---:|---:|" + "---:|" * (len(args.bandwidths) + 2))
    for j, target in enumerate(names):
        cells = " | ".join(f"{v:.3f}" for v in rows[j])
        print(f"| {target} | {np.nanmean(matrix[:, j]):.3f} | {cells} |")
    means = np.nanmean(np.array(rows), axis=0)
    print(
        f"| **mean** | {np.nanmean(matrix):.3f} | "
        + " | ".join(f"**{v:.3f}**" for v in means)
        + " |"
    )
    best_default(data, forests, space)
    np.set_printoptions(precision=2, suppress=True, linewidth=160)
    print("\nSpearman, row's forest ranking column's trials:", *names, sep="\n  ")
    print(matrix)


if __name__ == "__main__":
    main()
