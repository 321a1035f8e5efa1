"""The seed's research API: the API reference's two usage examples, run as written (import
paths adapted), plus TaskDistribution, MAML and the error paths."""

from __future__ import annotations

import os

from metapeft_optuna import ConfigError, MetaLearningError, TaskSamplingError
from metapeft_optuna.research import (
    BaselineComparison,
    MAMLLearner,
    ReptileLearner,
    SimpleClassifier,
    TaskConfig,
    TaskDistribution,
    cross_entropy_loss,
)

import mlx.core as mx
import numpy as np
import pytest

CONFIG_YAML = """\
algorithm: reptile
meta_batch_size: 4
num_meta_iterations: 150
inner_lr: 0.01
outer_lr: 0.001
num_inner_steps: 5
eval_interval: 50
save_interval: 75
"""


@pytest.fixture(scope="module")
def seed_example(tmp_path_factory):
    """The API reference's "Basic Meta-Training Loop", with its config in a temp dir."""
    workdir = tmp_path_factory.mktemp("seed")
    (workdir / "configs").mkdir()
    (workdir / "configs" / "default.yaml").write_text(CONFIG_YAML)
    (workdir / "checkpoints").mkdir()
    old = os.getcwd()
    os.chdir(workdir)
    try:
        mx.random.seed(0)
        # ---- begin: the seed's example, import paths adapted ----
        from metapeft_optuna.research.logging import setup_logger
        from metapeft_optuna.research.meta_config import MetaLearningConfig

        logger = setup_logger("meta_learning", log_dir="logs")
        config = MetaLearningConfig.from_yaml("configs/default.yaml")

        task_configs = [
            TaskConfig(
                task_id=f"task_{i}",
                task_family="linear_classification",
                num_classes=2,
                input_dim=2,
                support_size=5,
                query_size=20,
            )
            for i in range(100)
        ]
        dist = TaskDistribution(task_configs, seed=42)
        train_dist, val_dist = dist.split_tasks(train_ratio=0.8)

        model = SimpleClassifier(input_dim=2, hidden_dim=64, num_classes=2)
        learner = ReptileLearner(
            model=model,
            inner_lr=config.inner_lr,
            outer_lr=config.outer_lr,
            num_inner_steps=config.num_inner_steps,
        )
        history = []
        for iteration in range(config.num_meta_iterations):
            episodes = [train_dist.sample_episode()[1:] for _ in range(config.meta_batch_size)]
            metrics = learner.meta_train_step(episodes, cross_entropy_loss)
            if iteration % config.eval_interval == 0:
                val_episodes = [val_dist.sample_episode()[1:] for _ in range(10)]
                val_results = learner.evaluate(val_episodes, cross_entropy_loss)
                logger.info(
                    f"Iter {iteration}: train_loss={metrics['query_loss']:.3f}, "
                    f"val_acc={val_results['step_5_acc']:.3f}"
                )
                history.append(val_results)
            if iteration % config.save_interval == 0:
                learner.save(f"checkpoints/reptile_iter_{iteration}.npz")
        # ---- end of the first example; the second ("Baseline Comparison") follows ----
        baseline_model = SimpleClassifier(input_dim=2, hidden_dim=64, num_classes=2)
        test_episodes = [val_dist.sample_episode()[1:] for _ in range(20)]
        comparison = BaselineComparison.compare_few_shot_performance(
            meta_learned_model=learner.model,
            standard_model=baseline_model,
            episodes=test_episodes,
            k_shots=[1, 5, 10],
        )
        for k, m in comparison.items():
            print(f"{k}-shot accuracy:")
            print(f"  Meta-learned: {m['meta_acc']:.3f}")
            print(f"  Baseline: {m['baseline_acc']:.3f}")
            print(f"  Improvement: {m['meta_acc'] - m['baseline_acc']:.3f}")
        yield {
            "learner": learner,
            "val_dist": val_dist,
            "comparison": comparison,
            "baseline_model": baseline_model,
            "test_episodes": test_episodes,
            "workdir": workdir,
            "history": history,
        }
    finally:
        os.chdir(old)


def test_reptile_beats_random_initialisation_on_held_out_tasks(seed_example):
    episodes = seed_example["test_episodes"]
    meta = seed_example["learner"].evaluate(episodes, cross_entropy_loss)
    baseline = ReptileLearner(seed_example["baseline_model"]).evaluate(episodes, cross_entropy_loss)
    assert meta["step_5_acc"] > baseline["step_5_acc"] + 0.15
    assert set(meta) >= {"step_1_acc", "step_5_acc", "final_loss"}


def test_baseline_comparison_reports_a_p_value(seed_example):
    comparison = seed_example["comparison"]
    assert sorted(comparison) == [1, 5, 10]
    for metrics in comparison.values():
        assert 0.0 <= metrics["p_value"] <= 1.0
        assert metrics["improvement"] == pytest.approx(
            metrics["meta_acc"] - metrics["baseline_acc"]
        )
    assert comparison[5]["p_value"] < 0.05  # the meta-learned initialisation is better


def test_checkpoints_and_logs_were_written(seed_example):
    workdir = seed_example["workdir"]
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == [
        "reptile_iter_0.npz",
        "reptile_iter_75.npz",
    ]
    assert "val_acc=" in (workdir / "logs" / "meta_learning.log").read_text()


def test_save_and_load_round_trip(seed_example, tmp_path):
    learner = seed_example["learner"]
    learner.save(tmp_path / "r.npz")
    fresh = ReptileLearner(SimpleClassifier(input_dim=2, hidden_dim=64, num_classes=2))
    fresh.load(tmp_path / "r.npz")
    x = mx.random.normal((4, 2))
    assert mx.allclose(fresh.model(x), learner.model(x))
    with pytest.raises(MetaLearningError, match="does not fit SimpleClassifier"):
        ReptileLearner(SimpleClassifier(input_dim=3)).load(tmp_path / "r.npz")
    with pytest.raises(MetaLearningError, match="checkpoint not found"):
        fresh.load(tmp_path / "missing.npz")


def test_standard_finetuning_baseline_learns():
    dist = TaskDistribution([TaskConfig("t", "gaussian_mixture", 3, 4, 60, 60)], seed=1)
    _, sx, sy, qx, qy = dist.sample_episode("t")
    model = SimpleClassifier(4, 32, 3)
    before = model(qx)
    result = BaselineComparison.evaluate_standard_finetuning(
        model, (sx, sy), (qx, qy), num_steps=60, lr=0.1
    )
    assert result["final_acc"] > result["initial_acc"] + 0.2
    assert len(result["learning_curve"]) == 60
    assert mx.array_equal(model(qx), before)  # the model is restored


@pytest.mark.parametrize("first_order", [False, True], ids=["second-order", "first-order"])
def test_maml_improves_few_shot_accuracy(first_order):
    mx.random.seed(1)
    configs = [TaskConfig(f"t{i}", "gaussian_mixture", 3, 4, 9, 30) for i in range(40)]
    train, val = TaskDistribution(configs, seed=3).split_tasks(0.75)
    learner = MAMLLearner(
        SimpleClassifier(4, 32, 3),
        inner_lr=0.1,
        outer_lr=0.01,
        num_inner_steps=2,
        first_order=first_order,
    )
    episodes = [val.sample_episode()[1:] for _ in range(10)]
    before = learner.evaluate(episodes, cross_entropy_loss)["step_5_acc"]
    for _ in range(40):
        out = learner.meta_train_step(
            [train.sample_episode()[1:] for _ in range(4)], cross_entropy_loss
        )
    assert learner.evaluate(episodes, cross_entropy_loss)["step_5_acc"] > before + 0.1
    assert out["param_diff"] > 0 and np.isfinite(out["query_loss"])


def test_second_order_maml_differs_from_first_order():
    dist = TaskDistribution([TaskConfig("t", "radial_classification", 2, 3, 8, 8)], seed=0)
    episode = dist.sample_episode("t")[1:]
    grads = []
    for first_order in (False, True):
        mx.random.seed(5)
        learner = MAMLLearner(
            SimpleClassifier(3, 8, 2), inner_lr=0.5, num_inner_steps=2, first_order=first_order
        )
        theta = learner.parameters()
        grads.append(
            mx.grad(
                lambda p, learner=learner: learner._query_loss_after_adaptation(
                    p, episode, cross_entropy_loss
                )[0]
            )(theta)
        )
    a = grads[0]["layers"][0]["weight"]
    b = grads[1]["layers"][0]["weight"]
    assert not mx.allclose(a, b, atol=1e-6)


def test_task_distribution_behaviour():
    configs = [
        TaskConfig(f"task_{i}", family, 3, 4, 9, 12)
        for i, family in enumerate(
            ["linear_classification", "gaussian_mixture", "radial_classification"]
        )
    ]
    dist = TaskDistribution(configs, seed=7)
    config, sx, sy, qx, qy = dist.sample_episode("task_2")
    assert config.task_id == "task_2"
    assert sx.shape == (9, 4) and qy.shape == (12,) and sx.dtype == mx.float32
    assert sorted(np.bincount(np.array(sy)).tolist()) == [3, 3, 3]  # label-balanced
    embedding = dist.get_task_embedding("task_0")
    assert embedding.shape == (5,) and 0 <= float(embedding[4]) <= 1
    assert abs(float(embedding[0]) - np.log(21)) < 1e-5
    again = TaskDistribution(configs, seed=7).sample_episode("task_2")
    assert mx.array_equal(again[1], sx)
    train, val = TaskDistribution(configs * 1, seed=7).split_tasks(train_ratio=0.67)
    assert len(train.task_configs) == 2 and len(val.task_configs) == 1
    # A task keeps its hidden rule in derived distributions.
    task = val.task_configs[0].task_id
    assert mx.array_equal(val.get_task_embedding(task), dist.get_task_embedding(task))


def test_task_sampling_errors():
    dist = TaskDistribution([TaskConfig("a", "linear_classification", 2, 2, 5, 5)], seed=0)
    with pytest.raises(TaskSamplingError, match="unknown task_id 'nonexistent'"):
        dist.sample_episode(task_id="nonexistent")
    with pytest.raises(TaskSamplingError, match="unknown task_id"):
        dist.get_task_embedding("b")
    with pytest.raises(TaskSamplingError, match="unknown task_family 'spiral'"):
        TaskConfig("x", "spiral", 2, 2, 5, 5)
    with pytest.raises(TaskSamplingError, match="num_classes=1 must be an integer >= 2"):
        TaskConfig("x", "linear_classification", 1, 2, 5, 5)
    with pytest.raises(TaskSamplingError, match="duplicate task ids"):
        TaskDistribution([TaskConfig("a", "gaussian_mixture", 2, 2, 5, 5)] * 2)
    with pytest.raises(TaskSamplingError, match="both sides need tasks"):
        dist.split_tasks(train_ratio=0.8)
    with pytest.raises(ConfigError, match="inner_lr=0 must be a number > 0"):
        ReptileLearner(SimpleClassifier(2), inner_lr=0)
    with pytest.raises(MetaLearningError, match="at least one episode"):
        ReptileLearner(SimpleClassifier(2)).meta_train_step([], cross_entropy_loss)
