"""The inspection commands: ``info``, ``models``, ``tasks``, ``recommend``, ``prior``,
``experience``."""

from __future__ import annotations

import argparse

import metapeft_optuna

from .. import schema
from ..validation import check_writable
from ._table import print_table


def cmd_info(args: argparse.Namespace) -> int:
    import mlx.core as mx

    from ..meta.prior import prior_path

    blas = metapeft_optuna.BLAS
    print(f"metapeft-optuna {metapeft_optuna.__version__}")
    print(f"mlx {mx.__version__} on {mx.default_device()}")
    print(f"BLAS: {blas.name} ({blas.path or blas.reason})")
    print(f"prior: {prior_path() or 'none (samplers start cold)'}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from ..models import NAMED_MODELS

    print_table(
        [{"name": k, "description": v} for k, v in NAMED_MODELS.items()], ["name", "description"]
    )
    print("\nAlso accepted: a local mlx-lm/Hugging Face model directory or a llama .gguf file.")
    return 0


def cmd_tasks_list(args: argparse.Namespace) -> int:
    from ..models import load_model
    from ..tasks import TaskCharacteristics, list_tasks, load_task
    from ..tasks.zoo import BUILTIN_TASKS

    _, tokenizer, _ = load_model(args.model)
    rows = []
    for name in list_tasks(with_sizes=args.sizes):
        task = load_task(name)
        chars = TaskCharacteristics.from_task(task, tokenizer)
        entry = BUILTIN_TASKS[name.split("@")[0]]
        rows.append(
            {
                "task": name,
                "domain": chars.domain,
                "type": chars.task_type,
                "size": chars.dataset_size,
                "seq_len": chars.sequence_length,
                "vocab": chars.vocabulary_size,
                "classes": chars.num_classes or "-",
                "test": len(task.splits().test),
                "quality": task.quality_objective,
                "complexity": f"{chars.complexity_score:.2f}",
                "source": entry.source,
                "description": entry.description,
            }
        )
    print_table(
        rows,
        [
            "task",
            "domain",
            "type",
            "size",
            "seq_len",
            "vocab",
            "classes",
            "test",
            "quality",
            "complexity",
            "source",
            "description",
        ],
    )
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from ..meta.prior import load_prior
    from ..models import load_model
    from ..tasks import TaskCharacteristics, load_task

    _, tokenizer, info = load_model(args.model)
    task = load_task(args.task)
    chars = TaskCharacteristics.from_task(task, tokenizer)
    system = load_prior()
    if system is None:
        from ..meta import MetaPEFTSystem

        system = MetaPEFTSystem()
    objectives = schema.default_objectives(task.quality_objective)
    recommendation = system.recommend(chars, info.to_dict(), objectives=objectives)
    print(f"method: {recommendation.method.value} (confidence {recommendation.confidence:.2f})")
    print(f"hyperparameters: {recommendation.hyperparameters}")
    print(f"expected: {recommendation.expected_performance}")
    print(f"why: {recommendation.reasoning}")
    return 0


def cmd_prior_train(args: argparse.Namespace) -> int:
    from ..meta import ExperienceBuffer, MetaPEFTSystem
    from ..meta.prior import base_experience, user_prior_path

    out = args.out or user_prior_path()
    check_writable("--out", out, folder=True)
    buffer = ExperienceBuffer() if args.only else base_experience()
    before = len(buffer)
    for experience in ExperienceBuffer.from_storages(args.experience or []):
        buffer.add(experience)
    if not buffer.complete():
        print("metapeft prior train: no complete experience to train on (give --experience).")
        return 2
    print(
        f"training on {len(buffer.complete())} experiences from {len(buffer.by_task())} tasks "
        f"({len(buffer) - before} new from --experience) ...",
        flush=True,
    )
    system = MetaPEFTSystem(seed=args.seed).fit(buffer)
    system.save(out)
    print(f"saved the prior to {out}")
    return 0


def best_quality_label(summary: dict) -> str:
    """A task summary's best quality as its metric reports it: ``"val_loss 2.684"``."""
    metric = summary.get("quality_metric", "accuracy")  # absent in priors saved before
    best = max(summary["best_quality"].values())
    return f"{metric} {-schema.OBJECTIVE_SPECS[metric].sign * best:.3f}"


def cmd_prior_show(args: argparse.Namespace) -> int:
    from ..meta.prior import load_prior, prior_path

    system = load_prior()
    if system is None:
        print(
            "no prior: MetaPEFTSampler starts cold (set METAPEFT_PRIOR or run "
            "`metapeft prior train`)."
        )
        return 0
    print(
        f"prior at {prior_path()}: {len(system.experience_buffer)} experiences, "
        f"{len(system.task_summaries_)} tasks"
    )
    print_table(
        [
            {
                "task": s["name"],
                "trials": s["trials"],
                "best method": s["best_method"],
                "best quality": best_quality_label(s),
            }
            for s in system.task_summaries_
        ],
        ["task", "trials", "best method", "best quality"],
    )
    return 0


def cmd_experience_export(args: argparse.Namespace) -> int:
    from ..meta import ExperienceBuffer

    check_writable("--out", args.out, folder=False)
    buffer = ExperienceBuffer.from_storages(args.storage)
    buffer.export_jsonl(args.out)
    print(f"wrote {len(buffer)} experiences from {len(buffer.task_names())} tasks to {args.out}")
    return 0
