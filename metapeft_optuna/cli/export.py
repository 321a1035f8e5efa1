"""``metapeft export`` and ``metapeft generate``: from a study's trial to generated text."""

from __future__ import annotations

import argparse
from pathlib import Path

from .tune import artifact_store, output_dir


def cmd_export(args: argparse.Namespace) -> int:
    import optuna

    from ..errors import ConfigError
    from ..meta.storages import open_storage
    from ..training.export import export_trial, select_trial
    from ..validation import check_writable

    storage = open_storage(args.storage, create=False)
    try:
        study = optuna.load_study(study_name=args.study_name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise ConfigError(
            f"--study-name {args.study_name!r}: not in {args.storage} "
            f"(its studies: {', '.join(names) or 'none'})."
        ) from None
    trial = select_trial(study, _trial_number(args.trial), args.objective).number
    artifacts = Path(args.artifacts or output_dir(args.storage) / "artifacts")
    if not artifacts.is_dir():
        raise ConfigError(
            f"--artifacts {artifacts}: no such folder; pass the artifact store the study "
            "was run with (metapeft tune --artifacts)."
        )
    out = Path(args.out or output_dir(args.storage) / "exports" / f"study-{study._study_id}")
    check_writable("--out", out, folder=True)
    done = export_trial(
        study,
        artifact_store(artifacts),
        out,
        trial=trial,
        fuse=args.fuse,
        model=args.model,
    )
    print(f"trial {done.trial} ({done.method}) exported to {out}:")
    print(f"  base model  {done.model}\n  adapter     {done.adapter}")
    if done.fused:
        print(f"  fused model {done.fused}")
    print("\nGenerate with:")
    for command in done.commands():
        print(f"  {command}")
    return 0


def _trial_number(text: str) -> int | str:
    from ..errors import ConfigError

    if text == "best":
        return text
    if text.isdigit():
        return int(text)
    raise ConfigError(f"--trial {text!r}: give a trial number (0, 1, ...) or best.")


def cmd_generate(args: argparse.Namespace) -> int:
    from ..training.generation import generate

    print(generate(args.model, args.prompt, args.adapter_path, max_tokens=args.max_tokens))
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export", help="a trial's base model and adapter for mlx-lm / metapeft generate"
    )
    export.add_argument("--storage", required=True, help="the study's storage")
    export.add_argument("--study-name", required=True, help="the study")
    export.add_argument(
        "--trial", default="best", help="a trial number, or best (default: %(default)s)"
    )
    export.add_argument(
        "--objective", help="objective that 'best' is along (default: the quality objective)"
    )
    export.add_argument(
        "--artifacts",
        metavar="DIR",
        help="the study's artifact store (default: beside the storage, as metapeft tune)",
    )
    export.add_argument(
        "--out", help="folder to write (default: beside the storage, exports/study-<id>)"
    )
    export.add_argument(
        "--fuse", action="store_true", help="also write the merged model (LoRA, DoRA, AdaLoRA)"
    )
    export.add_argument("--model", help="the model spec (default: the one the study recorded)")
    export.set_defaults(func=cmd_export)

    generate = commands.add_parser("generate", help="generate with an adapter of any method")
    generate.add_argument(
        "--model", required=True, help="a named model, an mlx-lm model directory or a .gguf"
    )
    generate.add_argument("--adapter-path", help="adapter directory (default: none)")
    generate.add_argument("--prompt", required=True, help="text in the adapter's task format")
    generate.add_argument(
        "--max-tokens", type=int, default=64, help="most tokens generated (default: %(default)s)"
    )
    generate.set_defaults(func=cmd_generate)
