"""The ``metapeft`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import metapeft_optuna

from .errors import MetaLearningError


def _print_table(rows: list[dict[str, object]], columns: Sequence[str]) -> None:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


def cmd_info(args: argparse.Namespace) -> int:
    import mlx.core as mx

    blas = metapeft_optuna.BLAS
    print(f"metapeft-optuna {metapeft_optuna.__version__}")
    print(f"mlx {mx.__version__} on {mx.default_device()}")
    print(f"BLAS: {blas.name} ({blas.path or blas.reason})")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .models import NAMED_MODELS

    _print_table(
        [{"name": k, "description": v} for k, v in NAMED_MODELS.items()], ["name", "description"]
    )
    print("\nAlso accepted: a local mlx-lm/Hugging Face model directory or a llama .gguf file.")
    return 0


def cmd_tasks_list(args: argparse.Namespace) -> int:
    from .models import load_model
    from .tasks import TaskCharacteristics, list_tasks, load_task
    from .tasks.zoo import BUILTIN_TASKS

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
                "complexity": f"{chars.complexity_score:.2f}",
                "source": entry.source,
                "description": entry.description,
            }
        )
    _print_table(
        rows,
        [
            "task",
            "domain",
            "type",
            "size",
            "seq_len",
            "vocab",
            "classes",
            "complexity",
            "source",
            "description",
        ],
    )
    return 0


def cmd_main(args: argparse.Namespace) -> int:
    """The README's main job: a real study on a built-in task with SmolLM2-135M."""
    from .models import load_model
    from .tasks import TaskCharacteristics, load_task

    model, tokenizer, info = load_model(args.model)
    task = load_task(args.task)
    chars = TaskCharacteristics.from_task(task, tokenizer)
    print(f"model: {info}")
    print(f"task: {task.name} ({task.task_type}, {task.domain}): {chars}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metapeft", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("info", help="versions and the active BLAS").set_defaults(func=cmd_info)
    commands.add_parser("models", help="list the named models").set_defaults(func=cmd_models)

    tasks = commands.add_parser("tasks", help="built-in tasks")
    tasks_commands = tasks.add_subparsers(dest="tasks_command", required=True)
    listing = tasks_commands.add_parser("list", help="list built-in tasks and characteristics")
    listing.add_argument("--sizes", action="store_true", help="list every size variant")
    listing.add_argument(
        "--model", default="tiny", help="model whose tokenizer measures the tasks (default: tiny)"
    )
    listing.set_defaults(func=cmd_tasks_list)

    main = commands.add_parser("main", help="the README's main job")
    main.add_argument("--task", default="word_sentiment@256")
    main.add_argument("--model", default="smollm2-135m")
    main.set_defaults(func=cmd_main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except MetaLearningError as exc:
        print(f"metapeft: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
