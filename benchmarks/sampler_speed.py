"""Time per suggestion of MetaPEFTSampler and TPE at 100 and 500 finished trials, and
the time to learn from a storage's experience.

Both samplers see the same study history (PEFT configurations from the search space with
objective values from a fixed synthetic function) and then suggest ``--suggestions``
full configurations each, in the same run. Then a meta-model fitted on one task of
``--experience`` learns the other tasks' experiences incrementally
(``MetaPEFTSystem.update``, what a sampler does with the other studies of its storage),
against a full refit on everything in the same run. Run:

    python benchmarks/sampler_speed.py [--sizes 100 500] [--suggestions 10]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import metapeft_optuna  # noqa: F401
from metapeft_optuna import schema
from metapeft_optuna.meta import ExperienceBuffer, MetaPEFTSystem
from metapeft_optuna.meta.prior import load_prior
from metapeft_optuna.models import load_model
from metapeft_optuna.samplers import MetaPEFTSampler
from metapeft_optuna.tasks import TaskCharacteristics, load_task
from metapeft_optuna.training import PEFTSearchSpace

import numpy as np
import optuna


def synthetic_values(params: dict) -> list[float]:
    accuracy = 0.9 - 0.05 * (math.log10(params["learning_rate"]) + 2.5) ** 2
    memory = 560 + 10 * params["batch_size"] + 5 * params.get("num_virtual_tokens", 0)
    seconds = 0.05 * params["steps"] * params["batch_size"]
    return [accuracy, memory, seconds]


def history(space: PEFTSearchSpace, n: int, chars: TaskCharacteristics, info: dict) -> optuna.Study:
    study = optuna.create_study(directions=schema.directions(schema.DEFAULT_OBJECTIVES))
    study.set_user_attr(schema.STUDY_TASK, {"name": "bench", "characteristics": chars.to_dict()})
    study.set_user_attr(schema.STUDY_MODEL, info)
    rng = np.random.default_rng(0)
    distributions = space.distributions()
    for _ in range(n):
        params = space.sample(rng)
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions={k: distributions[k] for k in params},
                values=synthetic_values(params),
            )
        )
    return study


def time_suggestions(study: optuna.Study, sampler, space: PEFTSearchSpace, k: int) -> float:
    study.sampler = sampler
    times = []
    for _ in range(k):
        start = time.perf_counter()
        trial = study.ask()
        _, hp = space.suggest(trial, num_layers=30)
        times.append(time.perf_counter() - start)
        study.tell(trial, synthetic_values(trial.params))
    return statistics.median(times)


def time_update(path: str) -> tuple[int, float, float]:
    """``(new experiences, seconds to learn them incrementally, seconds to refit all)``."""
    buffer = ExperienceBuffer.from_storages([path])
    groups = buffer.by_task()
    first = sorted(groups)[0]
    system = MetaPEFTSystem().fit(ExperienceBuffer(groups[first]))
    new = [e for key, group in groups.items() if key != first for e in group]
    start = time.perf_counter()
    system.update(new)
    update = time.perf_counter() - start
    start = time.perf_counter()
    MetaPEFTSystem().fit(buffer)
    return len(new), update, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--suggestions", type=int, default=10)
    parser.add_argument("--experience", default="studies/meta_dataset.jsonl")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = PEFTSearchSpace()
    _, tokenizer, info = load_model("smollm2-135m-q4")
    chars = TaskCharacteristics.from_task(load_task("sentiment_strength@256"), tokenizer)
    prior = load_prior(space)
    print(
        f"prior: {'shipped' if prior else 'none (cold start, study-local surrogate)'}; "
        f"median seconds per suggestion over {args.suggestions} suggestions\n"
    )
    print("| finished trials | MetaPEFTSampler (s) | TPE multivariate (s) | ratio |")
    print("|---:|---:|---:|---:|")
    for n in args.sizes:
        meta = time_suggestions(
            history(space, n, chars, info.to_dict()),
            MetaPEFTSampler(system=prior, use_prior=False, seed=0, n_warm_start=0),
            space,
            args.suggestions,
        )
        tpe = time_suggestions(
            history(space, n, chars, info.to_dict()),
            optuna.samplers.TPESampler(seed=0, multivariate=True),
            space,
            args.suggestions,
        )
        print(f"| {n} | {meta:.3f} | {tpe:.3f} | {meta / tpe:.1f}x |", flush=True)
    n, update, refit = time_update(args.experience)
    print("\n| new experiences | incremental update (s) | full refit (s) | ratio |")
    print("|---:|---:|---:|---:|")
    print(f"| {n} | {update:.2f} | {refit:.2f} | {update / refit:.2f}x |")


if __name__ == "__main__":
    main()
