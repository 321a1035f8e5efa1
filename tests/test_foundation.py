"""Package-level plumbing: BLAS preload, config, logging, atomic writes, CLI."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import metapeft_optuna
from metapeft_optuna import ConfigError
from metapeft_optuna.atomic import atomic_write_json, atomic_write_text
from metapeft_optuna.cli import main as cli_main
from metapeft_optuna.research import MetaLearningConfig, setup_logger

import pytest


def _run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}
    )


@pytest.mark.skipif(sys.platform != "linux", reason="the preload is Linux-only")
def test_blas_is_preloaded_on_linux():
    assert metapeft_optuna.BLAS.name in {"mkl", "openblas"}
    assert metapeft_optuna.BLAS.path and os.path.exists(metapeft_optuna.BLAS.path)


@pytest.mark.skipif(sys.platform != "linux", reason="the preload is Linux-only")
def test_blas_preload_can_be_turned_off():
    out = _run_python("import metapeft_optuna as m; print(m.BLAS.name)", METAPEFT_BLAS="off")
    assert out.returncode == 0 and out.stdout.strip() == "reference"


@pytest.mark.skipif(sys.platform != "linux", reason="the preload is Linux-only")
def test_warns_when_mlx_was_imported_first():
    out = _run_python(
        "import mlx.core\nimport metapeft_optuna as m\nprint(m.BLAS.name)", METAPEFT_BLAS=""
    )
    assert out.stdout.strip() == "reference"
    assert "mlx was imported before metapeft_optuna" in out.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="the preload is Linux-only")
def test_bad_blas_path_is_a_clear_error():
    out = _run_python("import metapeft_optuna", METAPEFT_BLAS="/nonexistent/libblas.so")
    assert out.returncode != 0
    assert "METAPEFT_BLAS='/nonexistent/libblas.so' does not exist" in out.stderr


def test_config_yaml_round_trip(tmp_path):
    cfg = MetaLearningConfig(algorithm="maml", meta_batch_size=8, inner_lr=0.05)
    cfg.to_yaml(tmp_path / "cfg.yaml")
    assert MetaLearningConfig.from_yaml(tmp_path / "cfg.yaml") == cfg
    assert cfg.to_dict()["meta_batch_size"] == 8


def test_config_defaults_match_the_api_reference():
    assert MetaLearningConfig().to_dict() == {
        "algorithm": "reptile",
        "meta_batch_size": 4,
        "num_meta_iterations": 1000,
        "inner_lr": 0.01,
        "outer_lr": 0.001,
        "num_inner_steps": 5,
        "eval_interval": 100,
        "save_interval": 500,
    }


@pytest.mark.parametrize(
    "text, message",
    [
        ("algorithm: sgd\n", "algorithm='sgd' is not supported"),
        ("inner_lr: -1\n", "inner_lr=-1 must be a number > 0"),
        ("meta_batch_size: 2.5\n", "meta_batch_size=2.5 must be an integer >= 1"),
        ("inner_lrr: 0.1\n", "unknown key(s) ['inner_lrr']"),
        ("- 1\n- 2\n", "expected a mapping"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_config_errors_name_the_field(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r".*") as info:
        MetaLearningConfig.from_yaml(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_config_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        MetaLearningConfig.from_yaml(tmp_path / "absent.yaml")


def test_setup_logger_writes_file_and_never_duplicates(tmp_path, capsys):
    logger = setup_logger("metapeft_test", log_dir=tmp_path, level="DEBUG")
    logger = setup_logger("metapeft_test", log_dir=tmp_path, level="DEBUG")
    logger.debug("hello once")
    for handler in logger.handlers:
        handler.flush()
    assert (tmp_path / "metapeft_test.log").read_text().count("hello once") == 1
    assert capsys.readouterr().err.count("hello once") == 1
    assert logger.level == logging.DEBUG
    with pytest.raises(ValueError, match="not a logging level"):
        setup_logger("metapeft_test", level="LOUD")


def test_atomic_writes_leave_no_partial_file(tmp_path):
    target = tmp_path / "data.json"
    atomic_write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}

    class Boom(Exception):
        pass

    from metapeft_optuna.atomic import atomic_path

    with pytest.raises(Boom), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise Boom
    assert json.loads(target.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.json"]
    atomic_write_text(tmp_path / "sub" / "x.txt", "ok")
    assert (tmp_path / "sub" / "x.txt").read_text() == "ok"


def test_cli_info_and_models(capsys):
    assert cli_main(["info"]) == 0
    assert "BLAS:" in capsys.readouterr().out
    assert cli_main(["models"]) == 0
    assert "smollm2-135m" in capsys.readouterr().out


def test_cli_reports_errors_without_traceback(capsys):
    assert cli_main(["tasks", "list", "--model", "no-such-model"]) == 2
    assert "metapeft: error: model 'no-such-model'" in capsys.readouterr().err
