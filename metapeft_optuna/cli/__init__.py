"""The ``metapeft`` command: tune a PEFT configuration, inspect tasks, train the prior."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import schema
from ..errors import MetaLearningError
from .commands import (
    cmd_experience_export,
    cmd_info,
    cmd_models,
    cmd_prior_show,
    cmd_prior_train,
    cmd_recommend,
    cmd_tasks_list,
)
from .export import add_commands as add_export_commands
from .tune import MAIN_STORAGE, MAIN_TASK, cmd_main, cmd_tune


def _add_tune_options(parser: argparse.ArgumentParser, *, main: bool) -> None:
    if not main:
        parser.add_argument(
            "--task",
            required=True,
            help="a built-in task (`metapeft tasks list`), a .jsonl/.csv file or an mlx-lm "
            "data directory (train/valid/test.jsonl)",
        )
        parser.add_argument(
            "--model",
            default="smollm2-135m",
            help="a named model (`metapeft models`), an mlx-lm model directory or a .gguf "
            "file (default: %(default)s)",
        )
        parser.add_argument(
            "--sampler",
            default="meta",
            choices=["meta", "tpe", "nsga2", "random", "gp"],
            help="MetaPEFTSampler or one of Optuna's (default: %(default)s)",
        )
        parser.add_argument(
            "--fallback",
            default="tpe",
            choices=["tpe", "gp"],
            help="--sampler meta: the sampler after the warm start; gp (needs torch) measured "
            "better from 10 trials on, docs/benchmarks.md (default: %(default)s)",
        )
        parser.add_argument(
            "--pruner",
            default="meta",
            choices=["meta", "none"],
            help="MetaPEFTPruner or none (default: %(default)s)",
        )
        parser.add_argument(
            "--objectives",
            help="comma-separated objective names from "
            f"{', '.join(schema.METRICS)} (default: the task's quality objective, accuracy "
            "or val_loss for free-form answers and plain text, then peak_memory_mb,"
            "train_seconds)",
        )
        parser.add_argument(
            "--methods",
            help="comma-separated PEFT methods to search (default: every method: "
            "lora,dora,adalora,prompt_tuning,prefix_tuning,p_tuning)",
        )
    parser.add_argument(
        "--trials",
        type=int,
        default=12 if main else 20,
        help="the study's total of finished trials: a resumed or parallel run stops there "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=330 if main else None,
        help="stop starting new trials after this many seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=390 if main else None,
        help="prune a trial still training after this many seconds, at its next "
        "learning-curve point (default: %(default)s)",
    )
    parser.add_argument(
        "--storage",
        default=MAIN_STORAGE,
        help="sqlite:///PATH, postgresql://..., or a journal file (PATH.log) "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--study-name",
        help="the study to create or resume (default: TASK-MODEL-SAMPLER, with -gp after "
        "--fallback gp)",
    )
    parser.add_argument(
        "--experience",
        nargs="+",
        metavar="STORAGE",
        help="more storages or .jsonl exports to learn from (the study's own storage is "
        "always read)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the sampler and the data order (default: 0)"
    )
    parser.add_argument(
        "--eval-examples",
        type=int,
        default=400,
        help="held-out test examples per trial (400: standard error <= 0.025 on accuracy)",
    )
    parser.add_argument(
        "--memory-limit-mb",
        type=float,
        help="fail a trial whose peak memory passes this many MB (default: no limit)",
    )
    parser.add_argument(
        "--artifacts",
        metavar="DIR",
        help="artifact store for every trial's adapter and learning-curve plot, listed in "
        "optuna-dashboard (default: OUT_DIR/artifacts)",
    )
    parser.add_argument(
        "--no-artifacts", action="store_true", help="keep no adapter or learning-curve plot"
    )
    parser.add_argument(
        "--adapters-dir", help="also keep every trial's adapter as a plain folder here"
    )
    parser.add_argument(
        "--out-dir",
        help="folder for the study's files, e.g. the Pareto plot (default: beside a SQLite "
        "or journal storage, else the current directory)",
    )
    parser.add_argument("--plot", help="Pareto plot PNG (default: OUT_DIR/study-<id>-pareto.png)")
    parser.add_argument(
        "--no-prior",
        action="store_true",
        help="start the meta sampler cold; prune on this study's curves alone",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bar (the per-trial lines stay)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes sharing the study, each with cores/N BLAS threads (2 on 2 "
        "cores: more fine-tunes per hour, see docs/performance.md) (default: %(default)s)",
    )
    parser.add_argument("--as-worker", type=int, help=argparse.SUPPRESS)  # worker index


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metapeft", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="versions, BLAS and prior").set_defaults(func=cmd_info)
    commands.add_parser("models", help="list the named models").set_defaults(func=cmd_models)

    tasks = commands.add_parser("tasks", help="built-in tasks")
    tasks_commands = tasks.add_subparsers(dest="tasks_command", required=True)
    listing = tasks_commands.add_parser("list", help="list built-in tasks and characteristics")
    listing.add_argument("--sizes", action="store_true", help="list every size variant")
    listing.add_argument(
        "--model", default="tiny", help="model whose tokenizer measures the tasks (default: tiny)"
    )
    listing.set_defaults(func=cmd_tasks_list)

    tune = commands.add_parser("tune", help="run a PEFT study (real fine-tunes)")
    _add_tune_options(tune, main=False)
    tune.set_defaults(func=cmd_tune)
    main = commands.add_parser("main", help=f"the README's main job ({MAIN_TASK}, SmolLM2)")
    _add_tune_options(main, main=True)
    main.set_defaults(func=cmd_main)

    recommend = commands.add_parser("recommend", help="the prior's recommendation for a task")
    recommend.add_argument("--task", required=True)
    recommend.add_argument("--model", default="smollm2-135m")
    recommend.set_defaults(func=cmd_recommend)

    prior = commands.add_parser("prior", help="the shipped meta-model")
    prior_commands = prior.add_subparsers(dest="prior_command", required=True)
    train = prior_commands.add_parser("train", help="train the prior on experience")
    train.add_argument(
        "--experience",
        nargs="+",
        default=[],
        metavar="STORAGE",
        help="storages (URL, .db, journal file) or JSON Lines exports to fold into the "
        "current prior's experience",
    )
    train.add_argument(
        "--only",
        action="store_true",
        help="train on --experience alone, not on the current prior's experience too",
    )
    train.add_argument(
        "--out",
        help="folder to write (default: the user's prior, ~/.local/share/metapeft-optuna/"
        "prior, used by default from then on)",
    )
    train.add_argument("--seed", type=int, default=0, help="seed of the networks' training")
    train.set_defaults(func=cmd_prior_train)
    prior_commands.add_parser("show", help="what the prior knows").set_defaults(func=cmd_prior_show)

    add_export_commands(commands)

    experience = commands.add_parser("experience", help="experience files")
    experience_commands = experience.add_subparsers(dest="experience_command", required=True)
    export = experience_commands.add_parser("export", help="storages -> JSON Lines")
    export.add_argument("--storage", nargs="+", required=True)
    export.add_argument("--out", required=True)
    export.set_defaults(func=cmd_experience_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for --workers' processes
    try:
        code = args.func(args)
        sys.stdout.flush()  # inside the try: a closed pipe fails here, not at exit
        return code
    except MetaLearningError as exc:
        print(f"metapeft: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`metapeft prior show | head`): stop quietly, and keep
        # Python from failing again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
