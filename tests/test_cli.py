"""The ``metapeft`` command line: tune, prior, recommend, experience export."""

from __future__ import annotations

import functools
import re
import sys
import time

from metapeft_optuna import meta
from metapeft_optuna.cli import main
from metapeft_optuna.meta import ExperienceBuffer, MetaPEFTSystem, SurrogateConfig

import optuna
import pytest
from synthetic_experience import TASKS, synthetic_experiences


@pytest.fixture
def tune_args(tmp_path):
    return [
        "tune",
        "--task",
        "parity@64",
        "--model",
        "tiny",
        "--trials",
        "3",
        "--quiet",
        "--storage",
        f"sqlite:///{tmp_path / 'cli.db'}",
        "--eval-examples",
        "8",
        "--plot",
        str(tmp_path / "front.png"),
    ]


@pytest.fixture
def small_prior_training(monkeypatch):
    """`metapeft prior train` with a small surrogate: these tests check what it trains on
    and where it saves, not how well it learns (tests/test_meta_model.py does)."""
    config = SurrogateConfig(members=2, joint_steps=150, reptile_iterations=5)
    monkeypatch.setattr(
        meta, "MetaPEFTSystem", functools.partial(MetaPEFTSystem, surrogate_config=config)
    )


@pytest.mark.parametrize("sampler", ["meta", "tpe", "random"])
def test_tune_prints_the_front_plot_and_dashboard_command(
    tune_args, tmp_path, capsys, sampler, monkeypatch
):
    monkeypatch.setenv("METAPEFT_PRIOR", "none")
    assert main(tune_args + ["--sampler", sampler]) == 0
    out = capsys.readouterr().out
    assert "Pareto front" in out and "accuracy" in out and "peak MB" in out
    assert "zero-shot baseline (untuned model, 8 test examples): accuracy" in out
    assert " ± " in out and "phase" in out  # quality with its standard error, and phases
    assert f"optuna-dashboard sqlite:///{tmp_path / 'cli.db'}" in out
    assert (tmp_path / "front.png").stat().st_size > 1000
    study = optuna.load_study(
        study_name=f"parity@64-tiny-{sampler}", storage=f"sqlite:///{tmp_path / 'cli.db'}"
    )
    assert len(study.trials) == 3


def test_prior_train_show_and_recommend(tmp_path, capsys, monkeypatch, small_prior_training):
    experience = tmp_path / "exp.jsonl"
    ExperienceBuffer(synthetic_experiences(per_task=12)).export_jsonl(experience)
    assert (
        main(
            [
                "prior",
                "train",
                "--only",
                "--experience",
                str(experience),
                "--out",
                str(tmp_path / "prior"),
            ]
        )
        == 0
    )
    monkeypatch.setenv("METAPEFT_PRIOR", str(tmp_path / "prior"))
    assert main(["prior", "show"]) == 0
    assert re.search(r"parity@64 .* accuracy [01]\.\d{3}", capsys.readouterr().out)
    assert main(["recommend", "--task", "iris", "--model", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "method:" in out and "Most similar past tasks" in out


def test_prior_show_gives_the_best_quality_as_its_metric_reports_it():
    from metapeft_optuna.cli.commands import best_quality_label

    loss = {"best_quality": {"lora": -2.75, "dora": -3.0}, "quality_metric": "val_loss"}
    assert best_quality_label(loss) == "val_loss 2.750"
    assert best_quality_label({"best_quality": {"lora": 0.5}}) == "accuracy 0.500"


def test_prior_train_folds_a_users_storage_into_the_prior_and_uses_it(
    tmp_path, tune_args, monkeypatch, capsys, small_prior_training
):
    """Without --out the new prior is the user's, and it becomes the default prior; it
    holds the earlier prior's experience plus the user's study."""
    from metapeft_optuna.meta.prior import prior_path, user_prior_path

    experience = tmp_path / "exp.jsonl"
    ExperienceBuffer(synthetic_experiences(per_task=12)).export_jsonl(experience)
    main(
        ["prior", "train", "--only", "--experience", str(experience), "--out", str(tmp_path / "p")]
    )
    monkeypatch.setenv("METAPEFT_PRIOR", "none")
    main(tune_args + ["--sampler", "random"])
    monkeypatch.setenv("METAPEFT_PRIOR", str(tmp_path / "p"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    capsys.readouterr()
    storage = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["prior", "train", "--experience", storage]) == 0
    assert "(3 new from --experience)" in capsys.readouterr().out
    monkeypatch.delenv("METAPEFT_PRIOR")
    assert prior_path() == user_prior_path() == tmp_path / "data" / "metapeft-optuna" / "prior"
    system = MetaPEFTSystem.load(prior_path())
    names = {e.task_name for e in system.experience_buffer}
    assert "parity@64" in names and len(system.experience_buffer) == 12 * len(TASKS) + 3


def test_prior_train_without_experience_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("METAPEFT_PRIOR", "none")
    monkeypatch.setattr("metapeft_optuna.meta.prior.META_DATASET", tmp_path / "absent.jsonl")
    assert main(["prior", "train", "--out", str(tmp_path / "p")]) == 2
    assert "no complete experience" in capsys.readouterr().out


def test_experience_export(tmp_path, tune_args, capsys, monkeypatch):
    monkeypatch.setenv("METAPEFT_PRIOR", "none")
    main(tune_args + ["--sampler", "random"])
    out = tmp_path / "out.jsonl"
    assert (
        main(
            [
                "experience",
                "export",
                "--storage",
                f"sqlite:///{tmp_path / 'cli.db'}",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert len(ExperienceBuffer.from_storages([str(out)])) == 3


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--trials", "-3", "--trials=-3"),
        ("--timeout", "-1", "--timeout=-1"),
        ("--adapters-dir", "FILE", "a file, not a folder"),
    ],
)
def test_bad_tune_options_are_one_line_before_anything_runs(
    tune_args, tmp_path, capsys, option, value, message
):
    if value == "FILE":
        value = str(tmp_path / "file.txt")
        (tmp_path / "file.txt").write_text("x")
    assert main([*tune_args, option, value]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "cli.db").exists()  # nothing was created


@pytest.mark.parametrize(
    "option, fix",
    [(["--sampler", "gp"], "choose another --sampler"), (["--fallback", "gp"], "leave --fallback")],
)
def test_gp_without_torch_is_one_line_before_anything_runs(
    tune_args, tmp_path, capsys, monkeypatch, option, fix
):
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    assert main([*tune_args, *option]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{' '.join(option)}: GPSampler needs torch" in err and fix in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "cli.db").exists()


def test_clear_errors(capsys):
    assert main(["tune", "--task", "no_such_task", "--model", "tiny"]) == 2
    assert "unknown task 'no_such_task'" in capsys.readouterr().err
    assert main(["tune", "--task", "parity@64", "--model", "tiny", "--objectives", "loss"]) == 2
    assert "objectives=['loss']: unknown ['loss']" in capsys.readouterr().err


def test_objectives_by_name_on_the_command_line(tune_args, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("METAPEFT_PRIOR", "none")
    args = tune_args + ["--sampler", "random", "--objectives", "val_loss,train_seconds"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "objectives: val_loss (minimize), train_seconds (minimize)" in out
    assert "zero-shot baseline" in out and "val_loss" in out and "(ppl " in out
    study = optuna.load_study(
        study_name="parity@64-tiny-random", storage=f"sqlite:///{tmp_path / 'cli.db'}"
    )
    assert study.metric_names == ["val_loss", "train_seconds"]


def test_prior_lookup_checkout_then_wheel_install(tmp_path, monkeypatch):
    from metapeft_optuna.meta import prior

    monkeypatch.delenv("METAPEFT_PRIOR", raising=False)
    installed = tmp_path / "share" / "prior"
    monkeypatch.setattr(prior, "REPOSITORY_PRIOR", tmp_path / "checkout")
    monkeypatch.setattr(prior, "INSTALLED_PRIOR", installed)
    assert prior.prior_path() is None
    installed.mkdir(parents=True)
    (installed / "meta_model.json").write_text("{}")
    assert prior.prior_path() == installed
    monkeypatch.setenv("METAPEFT_PRIOR", "none")
    assert prior.prior_path() is None


def test_a_study_name_is_not_reused_for_another_task_or_search(tune_args, tmp_path, capsys):
    """Resuming under a name used for another task (or other method choices) is refused
    with one line naming both, before any trial runs."""
    named = [*tune_args, "--study-name", "exp", "--sampler", "random", "--trials", "1"]
    assert main(named) == 0
    other = [*named]
    other[other.index("parity@64")] = "sort_digits@64"
    capsys.readouterr()
    assert main(other) == 2
    err = capsys.readouterr().err.strip()
    assert "'parity@64'" in err and "'sort_digits@64'" in err and "new study name" in err
    assert len(err.splitlines()) == 1
    study = optuna.load_study(study_name="exp", storage=f"sqlite:///{tmp_path / 'cli.db'}")
    assert len(study.trials) == 1  # nothing was appended


def test_trials_is_the_studys_total(tune_args, tmp_path, capsys):
    args = [*tune_args, "--sampler", "random", "--trials", "2"]
    assert main(args) == 0
    assert main(args) == 0  # resumed: nothing missing
    assert "has its 2 trials already" in capsys.readouterr().out
    assert main([*args[:-1], "3"]) == 0  # one more
    study = optuna.load_study(
        study_name="parity@64-tiny-random", storage=f"sqlite:///{tmp_path / 'cli.db'}"
    )
    assert len(study.trials) == 3


def test_a_worker_stops_when_the_running_trials_complete_the_total():
    """With 3 trials ended and another worker's trial running, a total of 4 is reached:
    the worker that just finished starts no fifth (parallel workers used to overshoot).
    A trial left running from before the run (a killed worker's) does not count."""
    from metapeft_optuna.cli.resume import StopAtTrials

    study = optuna.create_study()
    for value in (1.0, 2.0, 3.0):
        study.add_trial(optuna.create_trial(value=value))
    stale = study.ask()  # running since before this worker started
    time.sleep(0.01)
    stop = StopAtTrials(4)
    stopped = []
    study.stop = lambda: stopped.append(True)
    stop(study, study.trials[0])
    assert stopped == []
    running = study.ask()  # another worker's, started during the run
    stop(study, study.trials[0])
    assert stopped == [True]
    for trial in (stale, running):  # cut short: not counted
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    stopped.clear()
    stop(study, study.trials[0])
    assert stopped == []


def test_journal_file_storage_and_storage_errors(tune_args, tmp_path, capsys):
    """A journal file is a storage like a database (tune, resume, export), and a storage
    that is neither fails in one line before the model loads."""
    journal = tmp_path / "runs" / "study.log"
    args = [*tune_args, "--sampler", "random", "--trials", "2"]
    args[args.index(f"sqlite:///{tmp_path / 'cli.db'}")] = str(journal)
    assert main(args) == 0 and journal.stat().st_size > 0
    out = tmp_path / "experience.jsonl"
    assert main(["experience", "export", "--storage", str(journal), "--out", str(out)]) == 0
    assert len(ExperienceBuffer.from_storages([str(out)])) == 2
    capsys.readouterr()
    args[args.index(str(journal))] = str(tmp_path / "plain.db")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "not an Optuna storage" in err and "sqlite:///" in err and len(err.splitlines()) == 1


def test_a_six_trial_study_reads_in_100_columns(tune_args, tmp_path, capsys, monkeypatch):
    """One line per finished trial, then the front with its settings below: every line
    of the output fits a 100-column terminal; the plot goes beside the storage."""
    monkeypatch.setenv("METAPEFT_PRIOR", "none")
    args = [a for a in tune_args if a not in ("--plot", str(tmp_path / "front.png"))]
    assert main([*args, "--sampler", "meta", "--trials", "6"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)
    per_trial = [line for line in lines if line.startswith("trial ") and " · " in line]
    assert len(per_trial) == 6 and "cold start" in per_trial[0] and "accuracy" in per_trial[0]
    assert "settings:" in out and "learning_rate=" in out
    assert (tmp_path / "study-1-pareto.png").stat().st_size > 1000


def test_methods_restrict_the_search_and_keep_the_prior(tune_args, tmp_path, capsys):
    """--methods limits every trial to the named methods; the shipped prior (trained on
    every method) still makes the warm start."""
    args = [*tune_args, "--sampler", "meta", "--trials", "2", "--methods", "prompt_tuning,lora"]
    assert main(args) == 0
    assert "meta-model recommendation" in capsys.readouterr().out
    study = optuna.load_study(
        study_name="parity@64-tiny-meta", storage=f"sqlite:///{tmp_path / 'cli.db'}"
    )
    assert {t.params["method"] for t in study.trials} <= {"prompt_tuning", "lora"}
    assert {t.user_attrs["metapeft_prediction"]["phase"] for t in study.trials} == {"warm start"}
    assert main([*tune_args, "--methods", "lora,qlora"]) == 2
    assert "unknown method(s) qlora; choose from lora, dora" in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly():
    """`metapeft prior show | head` must not end in a BrokenPipeError traceback."""
    import subprocess
    import sys
    from pathlib import Path

    command = [str(Path(sys.executable).parent / "metapeft"), "prior", "show"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()  # the reader is gone before anything is written
    err = process.stderr.read()
    assert process.wait(timeout=120) == 0
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_adapters_and_notes_reach_the_dashboard(tune_args, tmp_path, monkeypatch):
    """Every completed trial's adapter files and learning-curve plot are Optuna artifacts
    beside the storage, named by ids; the study and trials carry dashboard notes."""
    from metapeft_optuna.training.dashboard import TRIAL_ARTIFACTS, download_adapter

    from optuna_dashboard._note import get_note_from_system_attrs

    monkeypatch.setenv("METAPEFT_PRIOR", "none")
    assert main([*tune_args, "--sampler", "meta", "--trials", "2", "--study-name", "my/s"]) == 0
    storage = f"sqlite:///{tmp_path / 'cli.db'}"
    study = optuna.load_study(study_name="my/s", storage=storage)
    store = optuna.artifacts.FileSystemArtifactStore(str(tmp_path / "artifacts"))
    trial = study.trials[0]
    names = set(trial.user_attrs[TRIAL_ARTIFACTS])
    assert {"adapter_config.json", f"learning-curve-{trial._trial_id}.png"} <= names
    metas = optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)
    assert {m.filename for m in metas} == names
    assert not any("my" in p.name for p in (tmp_path / "artifacts").iterdir())
    adapter = download_adapter(store, trial, tmp_path / "exported")
    assert (adapter / "adapter_config.json").is_file()

    system_attrs = study._storage.get_study_system_attrs(study._study_id)
    study_note = get_note_from_system_attrs(system_attrs, None)["body"]
    assert "parity@64 on tiny" in study_note and "Zero-shot baseline" in study_note
    trial_note = get_note_from_system_attrs(system_attrs, trial._trial_id)["body"]
    assert "**Phase:** cold start" in trial_note and "| accuracy |" in trial_note
    memory = next(line for line in trial_note.splitlines() if line.startswith("| peak_memory"))
    assert memory.endswith(f"| {trial.values[1]:.1f} |")  # measured, from the values
    assert "**Settings (lora)**" in trial_note and "| learning_rate |" in trial_note


def test_export_the_best_trial_and_generate(tune_args, tmp_path, capsys, monkeypatch):
    """A LoRA study's best trial, exported, generates with `mlx_lm generate`; a prompt
    tuning study's with `metapeft generate` (which mlx-lm cannot run)."""
    import subprocess
    import sys

    monkeypatch.setenv("METAPEFT_PRIOR", "none")
    storage = f"sqlite:///{tmp_path / 'cli.db'}"
    for method in ("lora", "prompt_tuning"):
        args = [*tune_args, "--sampler", "random", "--trials", "2", "--methods", method]
        assert main([*args, "--study-name", method]) == 0
        out = tmp_path / f"export-{method}"
        capsys.readouterr()
        command = ["export", "--storage", storage, "--study-name", method, "--out", str(out)]
        assert main(command) == 0
        printed = capsys.readouterr().out
        assert f"({method}) exported to {out}" in printed and "metapeft generate" in printed
    prompt = "Bits: 0110\nParity:"
    lora = tmp_path / "export-lora"
    result = subprocess.run(
        [sys.executable, "-m", "mlx_lm", "generate", "--model", str(lora / "model"),
         "--adapter-path", str(lora / "adapter"), "--prompt", prompt, "--max-tokens", "4"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    prompt_dir = tmp_path / "export-prompt_tuning"
    generate = ["generate", "--model", str(prompt_dir / "model"), "--prompt", prompt]
    assert (
        main([*generate, "--adapter-path", str(prompt_dir / "adapter"), "--max-tokens", "4"]) == 0
    )
    assert main(["export", "--storage", storage, "--study-name", "prompt_tuning", "--fuse"]) == 2
    assert "no weights to merge" in capsys.readouterr().err
    assert main(["export", "--storage", storage, "--study-name", "nope"]) == 2
    assert "its studies: lora, prompt_tuning" in capsys.readouterr().err


def test_a_dead_workers_trial_is_failed_and_its_configuration_retried(
    tune_args, tmp_path, monkeypatch
):
    """A trial left RUNNING by a killed process (its heartbeat stopped) becomes FAIL at
    the next run's first trial, and its configuration runs again."""
    from metapeft_optuna.meta import storages
    from metapeft_optuna.training import PEFTSearchSpace

    monkeypatch.setenv("METAPEFT_PRIOR", "none")
    monkeypatch.setattr(storages, "HEARTBEAT_SECONDS", 1)
    monkeypatch.setattr(storages, "GRACE_SECONDS", 1)
    storage = storages.open_storage(f"sqlite:///{tmp_path / 'cli.db'}", heartbeat=True)
    study = optuna.create_study(
        study_name="z", storage=storage, directions=["maximize", "minimize", "minimize"]
    )
    with pytest.warns(UserWarning, match="Heartbeat"):  # a worker asks through optimize
        zombie = study.ask()
    PEFTSearchSpace(methods=("lora",)).suggest(zombie, num_layers=2)
    storage.record_heartbeat(zombie._trial_id)  # then the process "dies"
    time.sleep(2)
    args = [*tune_args, "--study-name", "z", "--sampler", "random", "--methods", "lora"]
    assert main([*args, "--trials", "2"]) == 0
    trials = optuna.load_study(study_name="z", storage=storage).trials
    assert trials[0].state == optuna.trial.TrialState.FAIL
    retried = [t for t in trials if storages.RETRY.retried_trial_number(t) == 0]
    assert len(retried) == 1 and retried[0].params == trials[0].params
    assert retried[0].state == optuna.trial.TrialState.COMPLETE


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_a_stop_signal_fails_the_running_trial_and_prints_the_study(
    tune_args, tmp_path, capsys, monkeypatch, stop
):
    """Ctrl-C or a scheduler's SIGTERM during a fine-tune: that trial is marked failed with
    its reason, the finished trials are shown, exit code 128 + the signal, no traceback."""
    import os
    import signal

    from metapeft_optuna.training import objective as objective_module

    monkeypatch.setenv("METAPEFT_PRIOR", "none")
    real = objective_module.fine_tune
    calls = []

    def fine_tune(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), getattr(signal, stop))
            time.sleep(5)  # the handler raises before this ends
        return real(*args, **kwargs)

    monkeypatch.setattr(objective_module, "fine_tune", fine_tune)
    code = main([*tune_args, "--sampler", "random", "--trials", "4"])
    assert code == 128 + getattr(signal, stop)
    out = capsys.readouterr().out
    assert f"stopped by {stop}" in out and "1 finished trials" in out
    trials = optuna.load_study(
        study_name="parity@64-tiny-random", storage=f"sqlite:///{tmp_path / 'cli.db'}"
    ).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "WAITING"]
    assert trials[1].user_attrs["fail_reason"] == f"interrupted ({stop})"
    assert trials[2].params == trials[1].params  # its configuration is tried again
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers restored
    # Resumed: the interrupted trial does not count towards --trials; its retry runs first.
    monkeypatch.setattr(objective_module, "fine_tune", real)
    assert main([*tune_args, "--sampler", "random", "--trials", "4"]) == 0
    trials = optuna.load_study(
        study_name="parity@64-tiny-random", storage=f"sqlite:///{tmp_path / 'cli.db'}"
    ).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL"] + ["COMPLETE"] * 3
    assert trials[2].params == trials[1].params


@pytest.mark.parametrize("damage", ["meta_model.json", "weights.safetensors"])
def test_a_corrupt_prior_warns_and_starts_cold_or_says_so_in_one_line(
    tmp_path, monkeypatch, capsys, damage
):
    """A prior cut short (an interrupted copy): the default one gives a warning and a
    cold start; one the user named with METAPEFT_PRIOR gives one line, exit 2."""
    import shutil

    from metapeft_optuna.meta.prior import load_prior, prior_path, user_prior_path

    monkeypatch.delenv("METAPEFT_PRIOR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    shutil.copytree(prior_path(), user_prior_path())  # the shipped prior, as the user's
    damaged = user_prior_path() / damage
    damaged.write_bytes(damaged.read_bytes()[:100])
    with pytest.warns(UserWarning, match="not used .a cold start.*retrain"):
        assert load_prior() is None
    monkeypatch.setenv("METAPEFT_PRIOR", str(user_prior_path()))
    capsys.readouterr()
    assert main(["recommend", "--task", "parity@64", "--model", "tiny"]) == 2
    err = capsys.readouterr().err.strip()
    assert damage in err and "metapeft prior train" in err and len(err.splitlines()) == 1


def test_the_main_job_gives_tune_every_option_it_reads(monkeypatch):
    """`metapeft main` (the README's main job) runs tune with its own fixed choices: its
    arguments must hold every option tune reads (a missing one broke `make run`)."""
    from metapeft_optuna.cli import build_parser, tune

    seen = {}
    monkeypatch.setattr(tune, "cmd_tune", lambda args: seen.update(vars(args)) or 0)
    assert main(["main"]) == 0
    tune_options = {
        a.dest
        for a in build_parser()._subparsers._group_actions[0].choices["tune"]._actions
        if a.dest != "help"
    }
    assert tune_options <= set(seen), tune_options - set(seen)
    assert seen["task"] == tune.MAIN_TASK and seen["model"] == "smollm2-135m"


def test_a_pruned_trial_line_names_its_step():
    """Multi-objective studies keep the learning curve in a user attribute (Optuna's
    intermediate values are single-objective): the line reads the step from it."""
    from metapeft_optuna.cli.report import trial_line

    trial = optuna.trial.create_trial(
        state=optuna.trial.TrialState.PRUNED,
        params={"method": "lora"},
        distributions={"method": optuna.distributions.CategoricalDistribution(["lora"])},
        user_attrs={"learning_curve": [{"step": 5}, {"step": 10}]},
    )
    assert trial_line(trial, ("accuracy", "peak_memory_mb")).endswith("pruned after step 10")


def test_workers_share_one_study_with_their_share_of_the_threads(tune_args, tmp_path, capsys):
    """``--workers 2``: two processes fill the study, each pinned to cores/2 BLAS
    threads; the parent prints the front once."""
    from metapeft_optuna.cli.workers import threads_per_worker, worker_command

    command = worker_command(["tune", "--workers", "3", "--task", "x", "--workers=2"], 1)
    assert command[3:] == ["tune", "--task", "x", "--workers", "1", "--as-worker", "1", "--quiet"]
    args = [*tune_args, "--sampler", "random", "--trials", "4", "--workers", "2"]
    assert main([*args, "--no-prior"]) == 0
    out = capsys.readouterr().out
    assert out.count("Pareto front") == 1 and "2 workers" in out
    trials = optuna.load_study(
        study_name="parity@64-tiny-random", storage=f"sqlite:///{tmp_path / 'cli.db'}"
    ).trials
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) >= 4 and len({tuple(sorted(t.params.items())) for t in done}) == len(done)
    assert {t.user_attrs["cpu_threads"] for t in done} == {threads_per_worker(2)}
