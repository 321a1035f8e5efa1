"""The catalogue of bad inputs: every kind a user can give, and the one line it gets.

Each :class:`BadInput` builds its input in an empty folder and runs it: a ``metapeft``
command line (``argv``) or a Python call (``call``). ``tests/test_bad_inputs.py`` asserts
that each gets exactly one line that contains ``expect`` (exit code 2 on the command
line, a :class:`~metapeft_optuna.errors.MetaLearningError` in Python), no traceback, and
that nothing in the folder was created or changed. ``benchmarks/bad_inputs.py`` runs the
catalogue and writes ``docs/reliability.md`` from the lines the cases really get.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TRIAL_FAILED = "trial failed: "
BASE = ["--model", "tiny", "--trials", "2", "--quiet", "--eval-examples", "8"]


@dataclass(frozen=True)
class BadInput:
    """One kind of bad input.

    Attributes:
        area: What the input is (``storage``, ``option``, ``data``, ...), for the catalogue.
        kind: The kind of mistake, one short phrase.
        expect: A fragment the one line must contain.
        argv: ``argv(folder)`` is a ``metapeft`` command line (the folder is empty and
            may be prepared first).
        call: ``call(folder)`` makes a Python call that must raise.
        env: Environment variables set while it runs (``{folder}`` is replaced).
    """

    area: str
    kind: str
    expect: str
    argv: Callable[[Path], list[str]] | None = None
    call: Callable[[Path], Any] | None = None  # raises, or returns a failed trial's reason
    env: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.area}: {self.kind}"


@dataclass
class Outcome:
    """What a case got: ``line`` (the message), ``code`` (exit code, or None for a Python
    call that raised a MetaLearningError), ``problem`` (why it is not one clear line, or
    empty) and ``changed`` (files created or modified in the folder)."""

    shown: str
    line: str
    code: int | None
    problem: str
    changed: list[str]


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size)
        for p in sorted(folder.rglob("*"))
    }


def run_case(case: BadInput, folder: Path) -> Outcome:
    """Prepare and run ``case`` in the empty ``folder`` and say what it got."""
    from metapeft_optuna.cli import main
    from metapeft_optuna.errors import MetaLearningError

    target = case.argv or case.call
    prepared = target(folder) if case.argv else None
    if prepared:
        shown = "metapeft " + " ".join(_shown(a, folder) for a in prepared)
        shown = shown.replace(" ".join([*BASE, "--storage", "sqlite:///DIR/s.db"]), "…")
    else:
        shown = "Python: " + getattr(case.call, "shown", "")
    before = snapshot(folder)
    err, out = io.StringIO(), io.StringIO()
    env = {k: v.replace("{folder}", str(folder)) for k, v in case.env.items()}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    code: int | None = None
    problem = ""
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            if case.argv:
                code = main(prepared)
            else:
                reason = case.call(folder)
                if isinstance(reason, str) and reason.startswith(TRIAL_FAILED):
                    # The trial failed with its reason and the study went on: right.
                    err = io.StringIO(reason + "\n")
                else:
                    problem = "accepted silently"
    except MetaLearningError as exc:
        err.write(str(exc) + "\n")
    except SystemExit as exc:  # argparse
        code = exc.code if isinstance(exc.code, int) else 2
    except BaseException as exc:  # noqa: BLE001 - what the catalogue reports
        problem = f"traceback: {type(exc).__name__}: {exc}"
        err.write("".join(traceback.format_exception(exc)))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
    if case.argv and not problem:
        if code == 0:
            problem = "accepted silently"
        elif code != 2:
            problem = f"exit code {code}"
        # argparse prints its usage before its one error line: the error line counts
        lines = [ln for ln in lines if not ln.startswith(("usage:", " "))]
    if not problem and len(lines) != 1:
        problem = f"{len(lines)} lines"
    line = lines[-1] if lines else ""
    if not problem and case.expect not in line:
        problem = f"the line lacks {case.expect!r}"
    after = snapshot(folder)
    changed = [p for p in after if before.get(p) != after[p]]
    return Outcome(shown, line.replace(str(folder), "DIR"), code, problem, changed)


def _shown(arg: str, folder: Path) -> str:
    arg = arg.replace(str(folder), "DIR")
    return arg if arg and " " not in arg and "'" not in arg else repr(arg)


# --- helpers that prepare inputs -------------------------------------------------------
def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return path


def _jsonl(path: Path, rows: list[Any]) -> Path:
    return _write(path, "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def _file_f(d: Path) -> Path:
    """A file ``f`` where a folder is needed (tests often run as root, whom a read-only
    folder does not stop: a file in the way does)."""
    return _write(d / "f", "x")


def _tune(*options: str, task: str = "parity@64") -> Callable[[Path], list[str]]:
    """``metapeft tune`` on the tiny model; ``{d}`` in an option is the folder."""

    def argv(d: Path) -> list[str]:
        given = [o.replace("{d}", str(d)) for o in options]
        storage = [] if "--storage" in given else ["--storage", f"sqlite:///{d}/s.db"]
        return ["tune", "--task", task.replace("{d}", str(d)), *BASE, *storage, *given]

    return argv


def _task_file(name: str, rows: list[Any] | str) -> Callable[[Path], list[str]]:
    def argv(d: Path) -> list[str]:
        path = d / name
        _write(path, rows) if isinstance(rows, str) else _jsonl(path, rows)
        return _tune(task=str(path))(d)

    return argv


def _prepared(prepare: Callable[[Path], Any], argv: Callable[[Path], list[str]]):
    def both(d: Path) -> list[str]:
        prepare(d)
        return argv(d)

    return both


def _study(d: Path, name: str, directions: list[str], storage: str = "s.db") -> None:
    import optuna

    optuna.create_study(study_name=name, storage=f"sqlite:///{d / storage}", directions=directions)


def _corrupt_prior(file: str, text: bytes) -> Callable[[Path], list[str]]:
    def argv(d: Path) -> list[str]:
        import shutil

        from metapeft_optuna.meta.prior import REPOSITORY_PRIOR

        shutil.copytree(REPOSITORY_PRIOR, d / "prior")
        _write(d / "prior" / file, text)
        return ["prior", "show"]

    return argv


def _python(target: str, *args: Any, **kwargs: Any) -> Callable[[Path], Any]:
    """A call of ``target`` (``module:name``, the name may be dotted) with these arguments."""
    module, _, name = target.partition(":")

    def call(d: Path) -> Any:
        function = importlib.import_module(module)
        for part in name.split("."):
            function = getattr(function, part)
        return function(*args, **kwargs)

    shown = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    call.shown = f"{name}({', '.join(shown)})"
    return call


def _without_torch(call: Callable[[Path], Any]) -> Callable[[Path], Any]:
    """``call`` as if torch, which the product does not install, were missing."""

    def hidden(d: Path) -> Any:
        saved = sys.modules.get("torch")
        sys.modules["torch"] = None  # `import torch` now raises ImportError
        try:
            return call(d)
        finally:
            if saved is None:
                del sys.modules["torch"]
            else:
                sys.modules["torch"] = saved

    hidden.shown = f"{call.shown} without torch"
    return hidden


def _enqueued(params: dict[str, Any]) -> Callable[[Path], str]:
    """A one-trial study of the tiny model whose trial has ``params`` (Optuna's
    ``enqueue_trial``): the trial must fail and the study go on; returns its reason."""

    def call(d: Path) -> str:
        from metapeft_optuna import schema
        from metapeft_optuna.training import PEFTObjective, TrainingBudget

        import optuna

        objective = PEFTObjective("parity@64", "tiny", budget=TrainingBudget(eval_examples=8))
        study = optuna.create_study(directions=objective.directions)
        study.enqueue_trial(params)
        study.optimize(objective, n_trials=1)
        trial = study.trials[0]
        if trial.state != optuna.trial.TrialState.FAIL:
            return f"trial {trial.state.name}"
        return TRIAL_FAILED + trial.user_attrs.get(schema.TRIAL_FAIL_REASON, "(no reason)")

    call.shown = f"study.enqueue_trial({params!r}); study.optimize(PEFTObjective(...))"
    return call


SPECS = "metapeft_optuna.training.search_space:default_specs"
LORA = "metapeft_optuna.peft:LoRAConfig"
OBJECTIVE = "metapeft_optuna.training:PEFTObjective"
GOOD_ROWS = [
    {"prompt": f"{i:04b} is", "completion": "even" if i % 2 == 0 else "odd"} for i in range(16)
]

CATALOGUE: list[BadInput] = [
    # --- storages ----------------------------------------------------------------------
    BadInput("storage", "a plain path", "sqlite:///", _tune("--storage", "{d}/results.db")),
    BadInput(
        "storage",
        "an unknown scheme",
        "not an Optuna storage",
        _tune("--storage", "redis://localhost/0"),
    ),
    BadInput(
        "storage",
        "a SQLite database where a file is in the way",
        "is a file",
        _prepared(_file_f, _tune("--storage", "sqlite:///{d}/f/s.db")),
    ),
    BadInput(
        "storage",
        "a SQLite path that is a folder",
        "a folder",
        _prepared(lambda d: (d / "x.db").mkdir(), _tune("--storage", "sqlite:///{d}/x.db")),
    ),
    BadInput(
        "storage",
        "a file that is not a SQLite database",
        "not an SQLite database",
        _prepared(
            lambda d: _write(d / "x.db", "hello\n" * 100), _tune("--storage", "sqlite:///{d}/x.db")
        ),
    ),
    BadInput(
        "storage",
        "a PostgreSQL server that does not answer",
        "cannot open it",
        _tune("--storage", "postgresql://u:secret@127.0.0.1:1/db"),
    ),
    BadInput(
        "storage",
        "a database without its driver",
        "driver is missing",
        _tune("--storage", "mysql://u@localhost/db"),
    ),
    BadInput(
        "storage",
        "a journal file where a file is in the way",
        "is a file",
        _prepared(_file_f, _tune("--storage", "{d}/f/s.log")),
    ),
    BadInput(
        "storage",
        "a journal path that is a folder",
        "a folder",
        _prepared(lambda d: (d / "j.log").mkdir(), _tune("--storage", "{d}/j.log")),
    ),
    BadInput(
        "storage",
        "a journal file that is not a journal",
        "not an Optuna journal",
        _prepared(lambda d: _write(d / "j.log", "not json\n"), _tune("--storage", "{d}/j.log")),
    ),
    BadInput(
        "storage",
        "an existing study with other directions",
        "directions",
        _prepared(lambda d: _study(d, "mine", ["minimize"]), _tune("--study-name", "mine")),
    ),
    BadInput("option", "an empty study name", "--study-name", _tune("--study-name", "")),
    BadInput(
        "option",
        "a fallback for a sampler that does not hand over",
        "only MetaPEFTSampler hands over",
        _tune("--sampler", "tpe", "--fallback", "gp"),
    ),
    # --- tune options ------------------------------------------------------------------
    BadInput("option", "a negative number of trials", "--trials=-3", _tune("--trials", "-3")),
    BadInput("option", "zero trials", "--trials=0", _tune("--trials", "0")),
    BadInput("option", "a negative timeout", "--timeout=-1.0", _tune("--timeout", "-1")),
    BadInput("option", "a timeout that is not a number", "--timeout", _tune("--timeout", "soon")),
    BadInput("option", "a negative deadline", "--deadline=-1.0", _tune("--deadline", "-1")),
    BadInput(
        "option", "zero evaluation examples", "--eval-examples=0", _tune("--eval-examples", "0")
    ),
    BadInput(
        "option", "a negative memory limit", "--memory-limit-mb", _tune("--memory-limit-mb", "-5")
    ),
    BadInput(
        "option", "a NaN memory limit", "--memory-limit-mb", _tune("--memory-limit-mb", "nan")
    ),
    BadInput("option", "an unknown objective", "unknown ['loss']", _tune("--objectives", "loss")),
    BadInput(
        "option", "an objective named twice", "repeated", _tune("--objectives", "accuracy,accuracy")
    ),
    BadInput("option", "an unknown method", "qlora", _tune("--methods", "lora,qlora")),
    BadInput("option", "no method", "(none given)", _tune("--methods", ",")),
    BadInput("option", "an unknown sampler", "invalid choice", _tune("--sampler", "cmaes")),
    BadInput(
        "option",
        "--adapters-dir naming a file",
        "a file, not a folder",
        _prepared(_file_f, _tune("--adapters-dir", "{d}/f")),
    ),
    BadInput(
        "option",
        "--artifacts naming a file",
        "a file, not a folder",
        _prepared(_file_f, _tune("--artifacts", "{d}/f")),
    ),
    BadInput(
        "option",
        "--out-dir naming a file",
        "a file, not a folder",
        _prepared(_file_f, _tune("--out-dir", "{d}/f")),
    ),
    BadInput(
        "option",
        "--adapters-dir where a file is in the way",
        "is a file",
        _prepared(_file_f, _tune("--adapters-dir", "{d}/f/a")),
    ),
    BadInput(
        "option",
        "--plot where a file is in the way",
        "is a file",
        _prepared(_file_f, _tune("--plot", "{d}/f/front.png")),
    ),
    BadInput(
        "option",
        "--plot naming a folder",
        "--plot",
        _prepared(lambda d: (d / "p.png").mkdir(), _tune("--plot", "{d}/p.png")),
    ),
    BadInput(
        "option",
        "--plot of an unknown image type",
        "unknown image type",
        _tune("--plot", "{d}/front.xyz"),
    ),
    BadInput(
        "option",
        "--experience that does not exist",
        "--experience",
        _tune("--experience", "{d}/missing.jsonl"),
    ),
    # --- task data ---------------------------------------------------------------------
    BadInput("data", "an unknown built-in task", "unknown task", _tune(task="no_such_task")),
    BadInput(
        "data", "a task size that is not a number", "positive integer", _tune(task="parity@many")
    ),
    BadInput(
        "data", "a data file that does not exist", "file not found", _tune(task="{d}/missing.jsonl")
    ),
    BadInput(
        "data",
        "a JSON Lines line that is not JSON",
        "bad.jsonl:3",
        _task_file("bad.jsonl", [*GOOD_ROWS[:2], "{oops", *GOOD_ROWS[2:]]),
    ),
    BadInput(
        "data",
        "a JSON Lines record without known fields",
        "bad.jsonl:1",
        _task_file("bad.jsonl", [{"question": "x"}] + GOOD_ROWS),
    ),
    BadInput(
        "data",
        "records of different formats in one file",
        "bad.jsonl:2",
        _task_file("bad.jsonl", [GOOD_ROWS[0], {"text": "x"}, *GOOD_ROWS[1:]]),
    ),
    BadInput(
        "data",
        "a label that is not text",
        "bad.jsonl:1",
        _task_file("bad.jsonl", [{"prompt": "x", "completion": ["a"]}] + GOOD_ROWS),
    ),
    BadInput("data", "an empty file", "no examples", _task_file("empty.jsonl", "")),
    BadInput(
        "data",
        "chat messages that are not a list",
        "bad.jsonl:1",
        _task_file("bad.jsonl", [{"messages": "hi"}]),
    ),
    BadInput(
        "data",
        "a chat without an assistant answer",
        "bad.jsonl:1",
        _task_file("bad.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}]),
    ),
    BadInput(
        "data",
        "a CSV file without a label column",
        "no label column",
        _task_file("bad.csv", "text,other\nab,c\n"),
    ),
    BadInput(
        "data",
        "a CSV row with an empty value",
        "bad.csv:3",
        _task_file("bad.csv", "input,label\nab,x\n,y\n"),
    ),
    BadInput(
        "data",
        "a label column with one value",
        "one value",
        _task_file("same.jsonl", [{"prompt": f"{i}", "completion": "yes"} for i in range(40)]),
    ),
    BadInput(
        "data",
        "too few examples to hold out a test split",
        "examples",
        _task_file("few.jsonl", GOOD_ROWS[:2]),
    ),
    BadInput(
        "data",
        "an mlx-lm data folder without train.jsonl",
        "train.jsonl",
        _prepared(lambda d: _jsonl(d / "data" / "valid.jsonl", GOOD_ROWS), _tune(task="{d}/data")),
    ),
    BadInput(
        "data",
        "a file of an unknown format",
        "unsupported file type",
        _task_file("notes.txt", "some words\n"),
    ),
    # --- models ------------------------------------------------------------------------
    BadInput(
        "model",
        "an unknown model name",
        "neither a known name",
        lambda d: [
            "tune",
            "--task",
            "parity@64",
            "--model",
            "gpt-9",
            "--storage",
            f"sqlite:///{d}/s.db",
        ],
    ),
    BadInput(
        "model",
        "a folder without a model",
        "config.json",
        _prepared(
            lambda d: (d / "m").mkdir(),
            lambda d: [
                "tune",
                "--task",
                "parity@64",
                "--model",
                str(d / "m"),
                "--storage",
                f"sqlite:///{d}/s.db",
            ],
        ),
    ),
    BadInput(
        "model",
        "a .gguf file that is not GGUF",
        "not a GGUF file",
        _prepared(
            lambda d: _write(d / "m.gguf", b"\0" * 64),
            lambda d: ["generate", "--model", str(d / "m.gguf"), "--prompt", "x"],
        ),
    ),
    BadInput(
        "model",
        "an adapter folder that does not exist",
        "adapter",
        lambda d: [
            "generate",
            "--model",
            "tiny",
            "--adapter-path",
            str(d / "none"),
            "--prompt",
            "x",
        ],
    ),
    # --- prior and experience ----------------------------------------------------------
    BadInput(
        "prior",
        "a named prior whose meta_model.json is truncated",
        "meta_model.json",
        _corrupt_prior("meta_model.json", b'{"version": 1, "tas'),
        env={"METAPEFT_PRIOR": "{folder}/prior"},
    ),
    BadInput(
        "prior",
        "a named prior whose weights are truncated",
        "weights",
        _corrupt_prior("weights.safetensors", b"\x10\0\0\0\0\0\0\0{"),
        env={"METAPEFT_PRIOR": "{folder}/prior"},
    ),
    BadInput(
        "prior",
        "a named prior folder that does not exist",
        "METAPEFT_PRIOR",
        lambda d: ["prior", "show"],
        env={"METAPEFT_PRIOR": "{folder}/nothing"},
    ),
    BadInput(
        "prior",
        "prior train --out naming a file",
        "--out",
        _prepared(_file_f, lambda d: ["prior", "train", "--out", str(d / "f")]),
    ),
    BadInput(
        "experience",
        "an experience export with a bad line",
        "exp.jsonl:1",
        _prepared(
            lambda d: _write(d / "exp.jsonl", "{oops\n"),
            lambda d: [
                "prior",
                "train",
                "--only",
                "--experience",
                str(d / "exp.jsonl"),
                "--out",
                str(d / "p"),
            ],
        ),
    ),
    BadInput(
        "experience",
        "experience export from a storage that does not exist",
        "does not exist",
        lambda d: [
            "experience",
            "export",
            "--storage",
            str(d / "none.log"),
            "--out",
            str(d / "e.jsonl"),
        ],
    ),
    BadInput(
        "experience",
        "experience export where a file is in the way",
        "is a file",
        _prepared(
            lambda d: (_file_f(d), _study(d, "x", ["maximize"])),
            lambda d: [
                "experience",
                "export",
                "--storage",
                f"sqlite:///{d}/s.db",
                "--out",
                str(d / "f" / "e.jsonl"),
            ],
        ),
    ),
    # --- export ------------------------------------------------------------------------
    BadInput(
        "export",
        "a study that does not exist",
        "not in",
        _prepared(
            lambda d: _study(d, "x", ["maximize"]),
            lambda d: ["export", "--storage", f"sqlite:///{d}/s.db", "--study-name", "y"],
        ),
    ),
    BadInput(
        "export",
        "a study without finished trials",
        "no completed trial",
        _prepared(
            lambda d: _study(d, "x", ["maximize"]),
            lambda d: ["export", "--storage", f"sqlite:///{d}/s.db", "--study-name", "x"],
        ),
    ),
    BadInput(
        "export",
        "a trial number that is not a number",
        "--trial",
        _prepared(
            lambda d: _study(d, "x", ["maximize"]),
            lambda d: [
                "export",
                "--storage",
                f"sqlite:///{d}/s.db",
                "--study-name",
                "x",
                "--trial",
                "first",
            ],
        ),
    ),
    # --- Python API --------------------------------------------------------------------
    BadInput(
        "python",
        "PEFTSearchSpace with an unknown method",
        "qlora",
        call=_python("metapeft_optuna.training:PEFTSearchSpace", methods=["lora", "qlora"]),
    ),
    BadInput(
        "python",
        "default_specs with low > high",
        "learning_rate",
        call=_python(SPECS, learning_rate=(1e-1, 1e-4)),
    ),
    BadInput(
        "python",
        "default_specs with one number of steps",
        "steps",
        call=_python(SPECS, steps=(10,)),
    ),
    BadInput(
        "python",
        "default_specs with no batch size",
        "batch_sizes",
        call=_python(SPECS, batch_sizes=()),
    ),
    BadInput(
        "trial",
        "an enqueued NaN learning rate",
        "learning_rate",
        call=_enqueued({"method": "lora", "learning_rate": float("nan")}),
    ),
    BadInput("trial", "an enqueued unknown method", "qlora", call=_enqueued({"method": "qlora"})),
    BadInput(
        "trial",
        "an enqueued rank out of range",
        "lora_rank",
        call=_enqueued({"method": "lora", "lora_rank": 100000}),
    ),
    BadInput(
        "trial",
        "an enqueued parameter the space does not have",
        "parameter(s) rank",
        call=_enqueued({"method": "lora", "rank": 8}),
    ),
    BadInput("python", "a LoRA rank of 0", "rank=0", call=_python(LORA, rank=0)),
    BadInput("python", "a dropout of 1", "dropout", call=_python(LORA, dropout=1.0)),
    BadInput(
        "python",
        "a budget of no learning-curve points",
        "curve_points",
        call=_python("metapeft_optuna.training:TrainingBudget", curve_points=0),
    ),
    BadInput(
        "python",
        "objectives with an unknown name",
        "unknown",
        call=_python(OBJECTIVE, "parity@64", model="tiny", objectives=("quality",)),
    ),
    BadInput(
        "python",
        "experience from a plain path",
        "sqlite:///",
        call=_python("metapeft_optuna.meta:ExperienceBuffer.from_storages", ["x.db"]),
    ),
    BadInput(
        "python",
        "a GP hand-over without torch",
        "GPSampler needs torch",
        call=_without_torch(_python("metapeft_optuna.samplers:MetaPEFTSampler", fallback="gp")),
    ),
]
