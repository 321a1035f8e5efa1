"""Method-specific behaviour: mlx-lm compatibility, AdaLoRA's schedule, prefixes, prompts,
SimpleClassifier, and the factory's errors."""

from __future__ import annotations

import json
import subprocess
import sys

from metapeft_optuna import AdapterCreationError
from metapeft_optuna.models import load_model
from metapeft_optuna.models.export import save_mlx_lm_model
from metapeft_optuna.peft import (
    AdaLoRAConfig,
    AdapterFactory,
    PEFTMethod,
    load_adapter,
    read_adapter_config,
    save_adapter,
    save_mlx_lm_adapter,
)
from metapeft_optuna.peft.adalora import RankAllocator
from metapeft_optuna.research import LoRAAdapter, SimpleClassifier
from metapeft_optuna.tasks import load_task
from metapeft_optuna.training.batching import collate, encode_task_examples, iterate_batches
from metapeft_optuna.training.loss import answer_loss
from metapeft_optuna.training.step import make_optimizer, make_train_step

import mlx.core as mx
import mlx.nn as nn
import pytest
from mlx.utils import tree_flatten

# The anchors run the compiled step that ships (tests/conftest.py).
pytestmark = pytest.mark.compiled


def _train(adapter, tokenizer, steps, lr=1e-2):
    examples = encode_task_examples(load_task("parity@64").splits().train, tokenizer)
    batches = iterate_batches(examples, 16, seed=0)
    optimizer = make_optimizer(lr, steps)
    step = make_train_step(adapter, optimizer)
    for i in range(1, steps + 1):
        loss, _, grads = step(next(batches))
        mx.eval(loss, adapter.state, optimizer.state)
        if grads is not None:
            adapter.after_step(i, grads)


def _tokens(tokenizer, text="Bits: 0110\nParity:"):
    return mx.array([tokenizer.encode(text)])


def test_lora_adapter_loads_in_mlx_lm_with_identical_logits(tmp_path):
    from mlx_lm.tuner.utils import load_adapters

    model, tokenizer, _ = load_model("tiny")
    adapter = AdapterFactory.create_adapter(
        "lora", model, {"rank": 4, "alpha": 8, "target_modules": "attention"}
    )
    _train(adapter, tokenizer, 6)
    adapter.eval()
    save_adapter(adapter, tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["fine_tune_type"] == "lora" and config["num_layers"] == 2
    assert config["lora_parameters"]["scale"] == 2.0

    fresh, _, _ = load_model("tiny")
    load_adapters(fresh, str(tmp_path / "adapter"))
    tokens = _tokens(tokenizer)
    assert mx.allclose(fresh(tokens), adapter.logits(adapter(tokens)), atol=1e-5)


@pytest.mark.parametrize("method", ["lora", "dora"])
def test_mlx_lm_fuse_command_accepts_our_adapters(tmp_path, method):
    model, tokenizer, _ = load_model("tiny")
    save_mlx_lm_model(model, tokenizer, tmp_path / "base")
    adapter = AdapterFactory.create_adapter(method, model, {"rank": 4})
    _train(adapter, tokenizer, 4)
    adapter.eval()
    save_adapter(adapter, tmp_path / "adapter")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "mlx_lm",
            "fuse",
            "--model",
            str(tmp_path / "base"),
            "--adapter-path",
            str(tmp_path / "adapter"),
            "--save-path",
            str(tmp_path / "fused"),
        ],
        check=True,
        capture_output=True,
    )
    fused, _, _ = load_model(tmp_path / "fused")
    tokens = _tokens(tokenizer)
    assert mx.allclose(fused(tokens), adapter.logits(adapter(tokens)), atol=1e-4)


def test_mlx_lm_written_lora_file_loads_here(tmp_path):
    """A file with only mlx-lm's keys (no metapeft section, no keys) loads as all-linear LoRA."""
    model, _, _ = load_model("tiny")
    adapter = AdapterFactory.create_adapter(
        "lora", model, {"rank": 2, "target_modules": "all_linear"}
    )
    save_adapter(adapter, tmp_path / "a")
    config_path = tmp_path / "a" / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config = {
        "fine_tune_type": "lora",
        "num_layers": 2,
        "lora_parameters": {"rank": 2, "scale": 10.0, "dropout": 0.0},
    }
    config_path.write_text(json.dumps(config))
    method, parsed = read_adapter_config(tmp_path / "a")
    assert method == "lora" and parsed["alpha"] == 20.0
    fresh, _, _ = load_model("tiny")
    assert (
        load_adapter(fresh, tmp_path / "a").num_trainable_parameters
        == adapter.num_trainable_parameters
    )


def test_adalora_exports_as_the_mlx_lm_lora_it_is(tmp_path):
    """AdaLoRA's SVD-form update, pruned ranks included, written as mlx-lm LoRA: mlx-lm
    loads it and its logits match ours."""
    from mlx_lm.tuner.utils import load_adapters

    model, tokenizer, _ = load_model("tiny")
    config = AdaLoRAConfig(init_r=4, target_r=2, tinit=1, tfinal=2, delta_t=1, total_step=6)
    adapter = AdapterFactory.create_adapter("adalora", model, config)
    _train(adapter, tokenizer, 6)
    adapter.eval()
    assert adapter.active_rank() < 4  # some singular values were pruned
    save_mlx_lm_adapter(adapter, tmp_path / "adapter")
    written = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert written["fine_tune_type"] == "lora" and written["lora_parameters"]["rank"] == 4
    fresh, _, _ = load_model("tiny")
    load_adapters(fresh, str(tmp_path / "adapter"))
    tokens = _tokens(tokenizer)
    assert mx.allclose(fresh(tokens), adapter.logits(adapter(tokens)), atol=1e-5)


def test_prompt_methods_are_not_written_for_mlx_lm():
    model, _, _ = load_model("tiny")
    adapter = AdapterFactory.create_adapter("prefix_tuning", model, {"num_virtual_tokens": 2})
    with pytest.raises(AdapterCreationError, match="through metapeft generate"):
        save_mlx_lm_adapter(adapter, "/nonexistent/never-written")


def test_mlx_lm_all_layers_file_loads_here(tmp_path):
    """`mlx_lm lora --num-layers -1` writes num_layers -1: every block."""
    model, _, _ = load_model("tiny")
    adapter = AdapterFactory.create_adapter("lora", model, {"rank": 2})
    save_adapter(adapter, tmp_path / "a")
    config_path = tmp_path / "a" / "adapter_config.json"
    config = json.loads(config_path.read_text())
    del config["metapeft"]
    config["num_layers"] = -1
    config_path.write_text(json.dumps(config))
    assert read_adapter_config(tmp_path / "a")[1]["num_layers"] is None
    fresh, _, _ = load_model("tiny")
    assert load_adapter(fresh, tmp_path / "a").num_trainable_parameters == (
        adapter.num_trainable_parameters
    )


@pytest.mark.parametrize("method", [m.value for m in PEFTMethod])
def test_save_load_generate_round_trip(tmp_path, method):
    """Every method's saved adapter generates, through metapeft's generate, exactly what
    the trained adapter generates in memory."""
    from metapeft_optuna.training.evaluation import greedy_decode
    from metapeft_optuna.training.generation import generate

    model, tokenizer, _ = load_model("tiny")
    adapter = AdapterFactory.create_adapter(method, model, _small_config(method))
    _train(adapter, tokenizer, 3)
    adapter.eval()
    save_adapter(adapter, tmp_path / "adapter")
    prompt = "Bits: 0110\nParity:"
    expected = greedy_decode(
        adapter, [tokenizer.encode(prompt, add_special_tokens=False)], 5, set()
    )
    text = generate("tiny", prompt, tmp_path / "adapter", max_tokens=5)
    assert text == tokenizer.decode(expected[0])


def _small_config(method: str) -> dict:
    if method == "adalora":
        return {"init_r": 4, "target_r": 2, "tinit": 1, "tfinal": 1, "total_step": 3}
    if method in ("prompt_tuning", "prefix_tuning", "p_tuning"):
        return {"num_virtual_tokens": 3}
    return {"rank": 2}


def test_adalora_rank_falls_to_target_by_the_end_of_the_schedule():
    model, tokenizer, _ = load_model("tiny")
    config = AdaLoRAConfig(init_r=6, target_r=2, tinit=2, tfinal=4, delta_t=1, total_step=16)
    adapter = AdapterFactory.create_adapter("adalora", model, config)
    examples = encode_task_examples(load_task("parity@64").splits().train, tokenizer)
    batches = iterate_batches(examples, 16, seed=0)
    optimizer = make_optimizer(1e-2, 16)
    step = make_train_step(adapter, optimizer)
    ranks = []
    for i in range(1, 17):
        _, _, grads = step(next(batches))
        mx.eval(adapter.state, optimizer.state)
        adapter.after_step(i, grads)
        ranks.append(adapter.active_rank())
    assert ranks[:2] == [6.0, 6.0]  # warm-up: full budget
    assert all(a >= b for a, b in zip(ranks, ranks[1:]))  # never grows back
    assert ranks[16 - 4 - 1] == 2.0  # target reached at total_step - tfinal
    assert ranks[-1] == 2.0
    assert sum(adapter.active_ranks().values()) == 2 * len(adapter.svd_paths)
    # Masked singular values are exactly zero once the pattern is frozen.
    nonzero = sum(int((m.lora_E != 0).sum()) for m in adapter.svd_modules().values())
    assert nonzero == 2 * len(adapter.svd_paths)


def test_adalora_budget_schedule_is_cubic():
    config = AdaLoRAConfig(init_r=12, target_r=4, tinit=10, tfinal=10, total_step=110)
    allocator = RankAllocator(config, {"a": None, "b": None})
    assert allocator.budget_schedule(10) == (24, False)
    budget, _ = allocator.budget_schedule(55)  # halfway: (1 - 0.5)^3 = 1/8 of the gap left
    assert budget == int((24 - 8) * 0.125 + 8)
    assert allocator.budget_schedule(101) == (8, True)


def test_adalora_orthogonality_term_is_in_the_loss():
    model, tokenizer, _ = load_model("tiny")
    adapter = AdapterFactory.create_adapter(
        "adalora", model, {"init_r": 4, "target_r": 2, "orth_reg_weight": 0.5}
    )
    batch = collate(encode_task_examples(load_task("parity@64").examples[:4], tokenizer))
    with_term, _ = answer_loss(adapter, batch)
    extra = adapter.extra_loss()
    assert float(extra) > 0
    adapter.config.orth_reg_weight = 0.0
    without, _ = answer_loss(adapter, batch)
    assert adapter.extra_loss() is None
    assert abs(float(with_term) - float(without) - float(extra)) < 1e-4


def test_adalora_needs_total_step_to_allocate():
    model, _, _ = load_model("tiny")
    adapter = AdapterFactory.create_adapter("adalora", model, {"init_r": 4, "target_r": 2})
    with pytest.raises(AdapterCreationError, match="total_step is None"):
        adapter.after_step(1, {})


def test_zero_length_prefix_matches_the_base_model():
    model, tokenizer, _ = load_model("tiny")
    tokens = _tokens(tokenizer)
    expected = model(tokens)
    adapter = AdapterFactory.create_adapter("prefix_tuning", model, {"num_virtual_tokens": 0})
    assert mx.array_equal(adapter.logits(adapter(tokens)), expected)
    assert adapter.num_trainable_parameters == 0


def test_prefix_tuning_equals_prepending_the_tokens_it_was_initialised_from():
    """With vocabulary init, the prefix is exactly the KV cache of real tokens."""
    model, tokenizer, _ = load_model("tiny")
    mx.random.seed(3)
    adapter = AdapterFactory.create_adapter("prefix_tuning", model, {"num_virtual_tokens": 5})
    mx.random.seed(3)
    prefix_tokens = mx.random.randint(0, model.model.embed_tokens.weight.shape[0], (1, 5))
    tokens = _tokens(tokenizer)
    full = model(mx.concatenate([prefix_tokens, tokens], axis=1))[:, 5:]
    assert mx.allclose(adapter.logits(adapter(tokens)), full, atol=1e-4)


def test_prefix_handles_grouped_query_attention():
    model, _, _ = load_model("tiny")
    adapter = AdapterFactory.create_adapter("prefix_tuning", model, {"num_virtual_tokens": 3})
    heads, kv_heads = model.args.num_attention_heads, model.args.num_key_value_heads
    assert kv_heads < heads
    assert adapter.prefix_keys.shape == (2, kv_heads, 3, 64 // heads)


def test_prompt_tuning_text_init_is_that_texts_embeddings():
    model, tokenizer, _ = load_model("tiny")
    adapter = AdapterFactory.create_adapter(
        "prompt_tuning",
        model,
        {"num_virtual_tokens": 7, "init": "text", "init_text": "abc"},
        tokenizer=tokenizer,
    )
    ids = tokenizer.encode("abc", add_special_tokens=False)
    expected = model.model.embed_tokens(mx.array((ids * 3)[:7]))
    assert mx.array_equal(adapter.prompt_embeddings, expected)
    assert adapter.config.init_token_ids == tuple((ids * 3)[:7])


def test_prompt_tuning_text_init_without_tokenizer_is_a_clear_error():
    model, _, _ = load_model("tiny")
    with pytest.raises(AdapterCreationError, match="needs the tokenizer"):
        AdapterFactory.create_adapter("prompt_tuning", model, {"init": "text", "init_text": "abc"})


def test_virtual_tokens_are_removed_from_the_outputs():
    model, tokenizer, _ = load_model("tiny")
    adapter = AdapterFactory.create_adapter("p_tuning", model, {"num_virtual_tokens": 6})
    tokens = _tokens(tokenizer)
    assert adapter(tokens).shape == (1, tokens.shape[1], 64)


@pytest.mark.parametrize("method", ["prompt_tuning", "p_tuning"])
def test_virtual_tokens_computed_once_per_batch_equal_prepending_them(method):
    """Training and scoring compute the virtual tokens' keys and values once per batch;
    hidden states, loss and gradients equal prepending the virtual tokens to every
    example (HF peft's formulation), for a right-padded batch of several lengths."""
    from metapeft_optuna.peft import model_access

    model, tokenizer, _ = load_model("tiny")
    adapter = AdapterFactory.create_adapter(method, model, {"num_virtual_tokens": 5})
    examples = encode_task_examples(load_task("addition@64").examples[:8], tokenizer)
    batch = collate(examples)
    assert len({e.length for e in examples}) > 1

    def prepended(inputs):
        embeddings = model_access.embed(model, inputs)
        virtual = adapter.virtual_tokens()[None]
        virtual = mx.broadcast_to(virtual, (inputs.shape[0], *virtual.shape[1:]))
        both = mx.concatenate([virtual, embeddings], axis=1)
        return model_access.hidden_states(model, None, None, both)[:, 5:]

    assert mx.allclose(adapter(batch.tokens), prepended(batch.tokens), atol=1e-5)

    def loss(forward):
        def value(trainable):
            adapter.update(trainable)
            hidden = mx.take_along_axis(forward(batch.tokens), batch.positions[..., None], 1)
            logits = adapter.logits(hidden)
            return (nn.losses.cross_entropy(logits, batch.targets) * batch.mask).sum()

        return mx.value_and_grad(value)(adapter.trainable_parameters())

    (shared, shared_grads), (full, full_grads) = loss(adapter), loss(prepended)
    assert mx.allclose(shared, full, rtol=1e-5)
    for (name, a), (_, b) in zip(tree_flatten(shared_grads), tree_flatten(full_grads)):
        assert mx.allclose(a, b, atol=1e-5, rtol=1e-4), name


def test_decoding_cache_matches_full_forward():
    """Incremental decoding through make_cache gives the same logits as one full pass."""
    for method, config in [
        ("prompt_tuning", {"num_virtual_tokens": 4}),
        ("prefix_tuning", {"num_virtual_tokens": 4}),
        ("lora", {"rank": 4}),
    ]:
        model, tokenizer, _ = load_model("tiny")
        adapter = AdapterFactory.create_adapter(method, model, config)
        tokens = _tokens(tokenizer)
        full = adapter.logits(adapter(tokens))[:, -1]
        cache = adapter.make_cache()
        adapter(tokens[:, :-2], cache)
        adapter(tokens[:, -2:-1], cache)
        last = adapter.logits(adapter(tokens[:, -1:], cache))[:, -1]
        assert mx.allclose(full, last, atol=1e-4), method


def test_lora_adapter_layer_matches_the_seed_description():
    layer = LoRAAdapter(in_features=16, out_features=8, rank=4, alpha=8.0)
    x = mx.random.normal((3, 16))
    assert mx.array_equal(layer(x), layer.linear(x))  # B starts at zero
    layer.lora_b = mx.random.normal(layer.lora_b.shape)
    expected = layer.linear(x) + (8.0 / 4) * (x @ layer.lora_a) @ layer.lora_b
    assert mx.allclose(layer(x), expected, atol=1e-5)
    assert layer.lora_a.shape == (16, 4) and layer.lora_b.shape == (4, 8)


def test_lora_on_simple_classifier_and_clear_errors_elsewhere():
    model = SimpleClassifier(input_dim=4, hidden_dim=8, num_classes=2)
    x = mx.random.normal((5, 4))
    before = model(x)
    adapter = AdapterFactory.create_adapter("lora", model, {"rank": 2, "alpha": 4})
    assert adapter.num_trainable_parameters == (4 * 2 + 2 * 8) + (8 * 2 + 2 * 8) + (8 * 2 + 2 * 2)
    assert mx.array_equal(adapter(x), before)
    dora = AdapterFactory.create_adapter("dora", SimpleClassifier(4), {"rank": 2})
    assert dora.num_trainable_parameters > 0
    for method in ["prompt_tuning", "prefix_tuning", "p_tuning", "adalora"]:
        with pytest.raises(AdapterCreationError, match="needs a causal language model"):
            AdapterFactory.create_adapter(method, SimpleClassifier(4), {})


@pytest.mark.parametrize(
    "method, config, message",
    [
        ("lora", {"rank": 0}, "rank=0 must be an integer in [1, 4096]"),
        ("lora", {"alpha": -1}, "alpha=-1 must be a number > 0.0"),
        ("lora", {"dropout": 1.5}, "dropout=1.5 must be a number >= 0.0 and <= 0.9"),
        ("lora", {"target_modules": "everything"}, "target_modules='everything'"),
        ("lora", {"target_modules": ("self_attn.x_proj",)}, "not found in the model's blocks"),
        ("lora", {"num_layers": 9}, "num_layers=9 but the model has 2 blocks"),
        ("lora", {"rnak": 4}, "unknown config key 'rnak'"),
        ("adalora", {"init_r": 4, "target_r": 8}, "target_r=8 must be an integer in [1, 4]"),
        ("adalora", {"tinit": 10, "tfinal": 10, "total_step": 15}, "tinit=10 must be < total_step"),
        ("prompt_tuning", {"init": "zeros"}, "init='zeros'; use one of"),
        ("prompt_tuning", {"init": "text"}, "init='text' needs init_text"),
        ("prompt_tuning", {"num_virtual_tokens": 600}, "does not fit the model's context of 512"),
        ("p_tuning", {"encoder_type": "gru"}, "encoder_type='gru'; use one of ('mlp', 'lstm')"),
        ("prefix_tuning", {"num_virtual_tokens": -1}, "num_virtual_tokens=-1 must be an integer"),
        ("ia3", {}, "unknown adapter type 'ia3'"),
    ],
)
def test_factory_errors_say_what_to_change(method, config, message):
    model, _, _ = load_model("tiny")
    with pytest.raises(AdapterCreationError) as info:
        AdapterFactory.create_adapter(method, model, config)
    assert message in str(info.value)


def test_factory_accepts_enums_aliases_and_dataclasses():
    model, _, _ = load_model("tiny")
    adapter = AdapterFactory.create_adapter(PEFTMethod.LORA, model, {"r": 4, "lora_alpha": 8})
    assert adapter.config.rank == 4 and adapter.config.scale == 2.0
    with pytest.raises(AdapterCreationError, match="already wrapped by an adapter"):
        AdapterFactory.create_adapter("lora", adapter, {})
    base = adapter.detach()
    assert not any("lora" in type(m).__name__.lower() for _, m in base.named_modules())
    again = AdapterFactory.create_adapter("Prefix-Tuning", base, None)
    assert again.method is PEFTMethod.PREFIX_TUNING
    with pytest.raises(AdapterCreationError, match="config must be a dict or a LoRAConfig"):
        AdapterFactory.create_adapter("lora", base, AdaLoRAConfig())


def test_prompt_methods_have_nothing_to_fuse():
    model, _, _ = load_model("tiny")
    adapter = AdapterFactory.create_adapter("prompt_tuning", model, {"num_virtual_tokens": 2})
    with pytest.raises(AdapterCreationError, match="nothing to merge"):
        adapter.fuse()


def test_load_adapter_errors(tmp_path):
    model, _, _ = load_model("tiny")
    with pytest.raises(AdapterCreationError, match="adapter_config.json: not found"):
        load_adapter(model, tmp_path)
    adapter = AdapterFactory.create_adapter("lora", model, {"rank": 4})
    save_adapter(adapter, tmp_path / "a")
    other, _, _ = load_model("tiny")
    config_path = tmp_path / "a" / "adapter_config.json"
    data = json.loads(config_path.read_text())
    data["metapeft"]["config"]["rank"] = 2
    config_path.write_text(json.dumps(data))
    with pytest.raises(AdapterCreationError, match="does not fit this lora adapter"):
        load_adapter(other, tmp_path / "a")
    config_path.write_text("{broken")
    with pytest.raises(AdapterCreationError, match="invalid JSON"):
        load_adapter(other, tmp_path / "a")


def test_saving_replaces_the_directory_atomically(tmp_path):
    model, _, _ = load_model("tiny")
    adapter = AdapterFactory.create_adapter("lora", model, {"rank": 4})
    save_adapter(adapter, tmp_path / "a")
    (tmp_path / "a" / "stale.txt").write_text("old")
    save_adapter(adapter, tmp_path / "a")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "adapter_config.json",
        "adapters.safetensors",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_dropout_only_in_training_mode():
    model, tokenizer, _ = load_model("tiny")
    adapter = AdapterFactory.create_adapter("lora", model, {"rank": 4, "dropout": 0.5})
    for module in adapter.base.modules():
        if "lora_b" in module:
            module.lora_b = mx.ones(module.lora_b.shape)
    tokens = _tokens(tokenizer)
    adapter.eval()
    assert mx.array_equal(adapter(tokens), adapter(tokens))
    adapter.train()
    assert not mx.array_equal(adapter(tokens), adapter(tokens))
    assert isinstance(adapter.base.layers[0].self_attn.q_proj.linear, nn.Linear)
