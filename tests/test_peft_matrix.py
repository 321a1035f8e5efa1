"""One parametrised matrix over every PEFT method (and main variants) on the tiny model.

Each case is trained once (module-scoped cache); the tests then check exact
trainable-parameter counts, gradients, frozen base weights, falling loss, save/load and
fusing.
"""

from __future__ import annotations

from dataclasses import dataclass

from metapeft_optuna.models import load_model
from metapeft_optuna.peft import AdapterFactory, BaseAdapter, load_adapter, save_adapter
from metapeft_optuna.tasks import load_task
from metapeft_optuna.training.batching import (
    EncodedExample,
    collate,
    encode_task_examples,
    iterate_batches,
)
from metapeft_optuna.training.frozen import FrozenBlocks
from metapeft_optuna.training.loss import answer_loss
from metapeft_optuna.training.step import make_optimizer, make_train_step

import mlx.core as mx
import mlx.nn as nn
import pytest
from mlx.utils import tree_flatten

# The anchors run the compiled step that ships (tests/conftest.py).
pytestmark = pytest.mark.compiled

STEPS = 12

# (id, model, method, config, learning rate, exact trainable parameters on the tiny model)
CASES = [
    (
        "lora",
        "tiny",
        "lora",
        {"rank": 8, "alpha": 16},
        1e-2,
        2 * (64 * 8 + 8 * 64 + 64 * 8 + 8 * 32),
    ),
    (
        "lora-all-last1",
        "tiny",
        "lora",
        {"rank": 4, "alpha": 8, "dropout": 0.1, "target_modules": "attention_mlp", "num_layers": 1},
        1e-2,
        512 + 384 + 384 + 512 + 768 + 768 + 768,
    ),
    ("dora", "tiny", "dora", {"rank": 8}, 1e-2, 3584 + 2 * (64 + 32)),
    ("lora-q4", "tiny-q4", "lora", {"rank": 8}, 1e-2, 3584),
    ("dora-q4", "tiny-q4", "dora", {"rank": 8}, 1e-2, 3776),
    (
        "adalora",
        "tiny",
        "adalora",
        {"init_r": 8, "target_r": 2, "tinit": 2, "tfinal": 3, "total_step": STEPS},
        1e-2,
        2 * ((8 * 64 + 8 + 64 * 8) + (8 * 64 + 8 + 32 * 8)),
    ),
    ("prompt-vocab", "tiny", "prompt_tuning", {"num_virtual_tokens": 8}, 5e-2, 8 * 64),
    (
        "prompt-random",
        "tiny",
        "prompt_tuning",
        {"num_virtual_tokens": 8, "init": "random"},
        5e-2,
        512,
    ),
    (
        "prompt-text",
        "tiny",
        "prompt_tuning",
        {"num_virtual_tokens": 8, "init": "text", "init_text": "Parity:"},
        5e-2,
        512,
    ),
    ("prefix", "tiny", "prefix_tuning", {"num_virtual_tokens": 8}, 5e-2, 2 * 2 * 2 * 8 * 16),
    (
        "prefix-projection",
        "tiny",
        "prefix_tuning",
        {"num_virtual_tokens": 8, "projection": True, "encoder_hidden_size": 32},
        1e-2,
        8 * 64 + (64 * 32 + 32) + (32 * 128 + 128),
    ),
    (
        "p-tuning-mlp",
        "tiny",
        "p_tuning",
        {"num_virtual_tokens": 8, "encoder_hidden_size": 32},
        1e-2,
        8 * 64 + (64 * 32 + 32) + (32 * 32 + 32) + (32 * 64 + 64),
    ),
    (
        "p-tuning-lstm",
        "tiny",
        "p_tuning",
        {"num_virtual_tokens": 8, "encoder_type": "lstm", "encoder_hidden_size": 16},
        1e-2,
        512
        + 2 * (64 * 64 + 64 * 16 + 64)
        + 2 * (64 * 32 + 64 * 16 + 64)
        + (32 * 32 + 32)
        + (32 * 64 + 64),
    ),
]
IDS = [c[0] for c in CASES]


@dataclass
class Trained:
    adapter: BaseAdapter
    tokenizer: object
    base_before: dict[str, mx.array]
    losses: list[float]
    probe: mx.array
    grads: dict[str, mx.array]


def _train(case) -> Trained:
    _, model_spec, method, config, lr, _ = case
    mx.random.seed(0)
    model, tokenizer, _ = load_model(model_spec)
    base_before = {k: mx.array(v) for k, v in tree_flatten(model.parameters())}
    adapter = AdapterFactory.create_adapter(method, model, config, tokenizer=tokenizer)
    examples = encode_task_examples(load_task("parity@64").splits().train, tokenizer)
    batches = iterate_batches(examples, 16, seed=0)
    probe = collate(examples[:4])
    grads = dict(tree_flatten(nn.value_and_grad(adapter, answer_loss)(adapter, probe)[1]))
    adapter.train()
    optimizer = make_optimizer(lr, STEPS)
    step = make_train_step(adapter, optimizer)
    losses = []
    for i in range(STEPS):
        loss, _, step_grads = step(next(batches))
        mx.eval(loss, adapter.state, optimizer.state)
        if step_grads is not None:
            adapter.after_step(i + 1, step_grads)
        losses.append(loss.item())
    adapter.eval()
    return Trained(adapter, tokenizer, base_before, losses, probe.tokens, grads)


_CACHE: dict[str, Trained] = {}


@pytest.fixture(params=CASES, ids=IDS)
def trained(request) -> tuple[tuple, Trained]:
    case = request.param
    if case[0] not in _CACHE:
        _CACHE[case[0]] = _train(case)
    return case, _CACHE[case[0]]


def test_exact_trainable_parameter_count(trained):
    case, result = trained
    assert result.adapter.num_trainable_parameters == case[5]


def test_gradients_reach_only_adapter_parameters(trained):
    _, result = trained
    base_names = set(result.base_before)
    assert result.grads, "no gradients at all"
    for name in result.grads:
        assert name.removeprefix("base.") not in base_names, f"gradient reached {name}"
    assert any(float(mx.abs(g).sum()) > 0 for g in result.grads.values())


def test_base_weights_are_bit_identical_after_training(trained):
    _, result = trained
    base_now = {}
    for name, value in tree_flatten(result.adapter.base.parameters()):
        # Layer-replacing methods move a base weight from x.weight to x.linear.weight.
        base_now[name.replace(".linear.", ".")] = value
    for name, before in result.base_before.items():
        assert mx.array_equal(base_now[name], before), name


def test_a_few_steps_lower_the_loss(trained):
    _, result = trained
    first, last = result.losses[0], sum(result.losses[-3:]) / 3
    assert last < first - 0.3, result.losses


def test_save_load_gives_identical_logits(trained, tmp_path):
    case, result = trained
    save_adapter(result.adapter, tmp_path / "adapter")
    fresh, _, _ = load_model(case[1])
    loaded = load_adapter(fresh, tmp_path / "adapter")
    loaded.eval()
    expected = result.adapter.logits(result.adapter(result.probe))
    got = loaded.logits(loaded(result.probe))
    assert mx.allclose(expected, got, atol=1e-5, rtol=1e-5)
    assert loaded.method == result.adapter.method


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c[2] in {"lora", "dora", "adalora"}],
    ids=[c[0] for c in CASES if c[2] in {"lora", "dora", "adalora"}],
)
def test_fuse_gives_the_same_outputs(case, tmp_path):
    if case[0] not in _CACHE:
        _CACHE[case[0]] = _train(case)
    result = _CACHE[case[0]]
    # Fuse a copy, keeping the cached adapter intact.
    save_adapter(result.adapter, tmp_path / "adapter")
    fresh, _, _ = load_model(case[1])
    adapter = load_adapter(fresh, tmp_path / "adapter")
    adapter.eval()
    tokens = result.probe
    before = adapter.logits(adapter(tokens))
    fused = adapter.fuse(dequantize=True)
    assert not any(hasattr(m, "lora_a") or hasattr(m, "lora_A") for _, m in fused.named_modules())
    assert mx.allclose(fused(tokens), before, atol=1e-4, rtol=1e-4)


def test_frozen_lower_blocks_are_reused_exactly(trained):
    """Blocks below the lowest adapted one are frozen and unchanged (LoRA family on the
    last blocks only): the forward from their cached output equals the full forward."""
    case, result = trained
    adapter, (_, _, method, config, _, _) = result.adapter, case
    family = method in {"lora", "dora", "adalora"}
    expected = 2 - config["num_layers"] if family and "num_layers" in config else 0
    assert adapter.frozen_blocks == expected
    if expected:
        examples = [EncodedExample(tuple(row), (2,)) for row in result.probe.tolist()]
        below = FrozenBlocks(adapter, examples).batch(range(4), result.probe.shape[1])
        full = adapter(result.probe)
        assert mx.allclose(adapter.forward_from(below, expected), full, atol=1e-5)
