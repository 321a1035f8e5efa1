"""Model loading: tiny test models, GGUF, the real SmolLM2-135M, and clear errors."""

from __future__ import annotations

from metapeft_optuna import ModelLoadError
from metapeft_optuna.models import load_model
from metapeft_optuna.models.gguf import load_gguf
from metapeft_optuna.research import SimpleClassifier, accuracy, cross_entropy_loss

import mlx.core as mx
import mlx.nn as nn
import pytest


def test_tiny_model_is_deterministic_and_described(tiny):
    model, tokenizer, info = tiny
    assert (info.num_layers, info.hidden_size, info.vocab_size) == (2, 64, 259)
    # embed 259*64 + 2 blocks * (q 64*64 + k,v 2*64*32 + o 64*64 + mlp 3*64*128 + 2 norms 64)
    # + final norm 64
    assert (
        info.num_parameters
        == 259 * 64 + 2 * (2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 128 + 2 * 64) + 64
    )
    again, _, _ = load_model("tiny")
    tokens = mx.array([tokenizer.encode("abc")])
    assert mx.array_equal(model(tokens), again(tokens))
    other, _, _ = load_model("tiny", seed=1)
    assert not mx.array_equal(model(tokens), other(tokens))


def test_byte_tokenizer_round_trips_any_text(tiny):
    _, tokenizer, _ = tiny
    text = "Ünïcödé ✓ 42\nnew line"
    assert tokenizer.decode(tokenizer.encode(text)) == text
    ids = tokenizer.encode("<|im_start|>user")
    assert ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>")
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_tiny_q4_is_quantized_with_the_same_parameter_count(tiny):
    model, _, info = load_model("tiny-q4")
    assert isinstance(model.layers[0].self_attn.q_proj, nn.QuantizedLinear)
    assert info.quantization_bits == 4
    assert info.num_parameters == tiny.info.num_parameters


def test_unknown_model_spec_is_a_clear_error():
    with pytest.raises(ModelLoadError, match="neither a known name"):
        load_model("gpt-17")


def test_missing_or_invalid_gguf(tmp_path):
    with pytest.raises(ModelLoadError, match="GGUF file not found"):
        load_gguf(tmp_path / "absent.gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        load_model(bad)


def test_model_directory_without_config(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(tmp_path)


def test_mlx_lm_directory_round_trip(tmp_path, tiny):
    """A model exported in mlx-lm's directory layout loads back through mlx_lm.load."""
    from metapeft_optuna.models.export import save_mlx_lm_model

    model, tokenizer, _ = tiny
    save_mlx_lm_model(model, tokenizer, tmp_path / "tiny")
    loaded, loaded_tokenizer, info = load_model(tmp_path / "tiny")
    tokens = mx.array([tokenizer.encode("hello")])
    assert mx.allclose(loaded(tokens), model(tokens), atol=1e-5)
    assert info.num_layers == 2
    assert loaded_tokenizer.encode("hello") == tokenizer.encode("hello")


def test_simple_classifier_loss_and_accuracy():
    model = SimpleClassifier(input_dim=10, hidden_dim=128, num_classes=3)
    logits = model(mx.random.normal((32, 10)))
    assert logits.shape == (32, 3)
    targets = mx.argmax(logits, axis=-1)
    assert accuracy(logits, targets) == 1.0
    one_hot = mx.eye(3)[targets]
    assert (
        abs(float(cross_entropy_loss(logits, targets)) - float(cross_entropy_loss(logits, one_hot)))
        < 1e-5
    )
    with pytest.raises(ValueError, match="input_dim=0 must be an integer >= 1"):
        SimpleClassifier(input_dim=0)


@pytest.mark.slow
def test_smollm2_answers_paris(smollm2):
    from mlx_lm import generate

    model, tokenizer, info = smollm2
    assert (info.num_layers, info.hidden_size, info.vocab_size) == (30, 576, 49152)
    assert info.num_parameters == 134_515_008
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        tokenize=False,
    )
    answer = generate(model, tokenizer, prompt, max_tokens=12)
    assert "Paris" in answer


@pytest.mark.slow
def test_smollm2_4bit_as_shipped(smollm2):
    model, tokenizer, info = load_model("smollm2-135m-q4")
    assert info.quantization_bits == 4
    assert isinstance(model.layers[0].mlp.up_proj, nn.QuantizedLinear)
    assert isinstance(model.model.embed_tokens, nn.QuantizedEmbedding)
    assert model.model.embed_tokens.bits == 8
    tokens = mx.array([tokenizer.encode("The capital of France is")])
    # Dequantized float32 weights give the same next token as the 4-bit ones.
    assert mx.argmax(model(tokens)[0, -1]) == mx.argmax(smollm2.model(tokens)[0, -1])
