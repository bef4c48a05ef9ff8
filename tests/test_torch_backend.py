"""The PyTorch path: the same numbers as transformers and as MLX, the same entities, clear choices."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
from reference import padded_batch, reference_output
from test_parity import CONFIGS, HEADS, TOLERANCE

import anno_mlx.runners as backends
from anno_mlx import NER, AnnoError, load
from anno_mlx.runners import runner_for


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("index", range(len(CONFIGS)))
def test_torch_matches_transformers_and_mlx(make_checkpoint, head, index):
    folder = make_checkpoint(head=head, legacy_keys=index % 2 == 0, seed=index, **CONFIGS[index])
    torch_model, tokenizer = load(folder, backend="torch", device="cpu")
    mlx_model, _ = load(folder, backend="mlx")
    window = CONFIGS[index]["local_attention"]
    lengths = [150, max(150 - window // 2 - 7, 2), 20, 1]
    ids, mask = padded_batch(
        np.random.default_rng(index), lengths, mlx_model.args.vocab_size, tokenizer.pad_token_id
    )
    ours = runner_for(torch_model)(ids, mask)
    real = mask.astype(bool)
    assert np.isfinite(ours).all()
    assert np.abs(ours - reference_output(folder, head, ids, mask))[real].max() <= TOLERANCE
    assert np.abs(ours - np.array(mlx_model(mx.array(ids), mx.array(mask))))[real].max() <= TOLERANCE


def test_same_entities_on_both_backends(converted_model):
    text = "Ada Lovelace worked with Charles Babbage in London. Marie Curie moved to Paris. " * 40
    on_mlx = NER.from_pretrained(converted_model, backend="mlx")(text)
    on_torch = NER.from_pretrained(converted_model, backend="torch", device="cpu")(text)
    assert [(e.start, e.end, e.label) for e in on_mlx] == [(e.start, e.end, e.label) for e in on_torch]
    np.testing.assert_allclose([e.score for e in on_mlx], [e.score for e in on_torch], atol=1e-4)
    assert NER.from_pretrained(converted_model, backend="mlx").runs_on.startswith("MLX on")


def test_long_documents_on_torch_match_mlx(tmp_path_factory):
    from anno_mlx.testing.tiny_checkpoint import make_tiny_checkpoint

    folder = make_tiny_checkpoint(tmp_path_factory.mktemp("ctx"), max_position_embeddings=64, seed=9)
    text = "The United Nations met in New York; Tokyo and Osaka signed. " * 150
    a = NER.from_pretrained(folder, backend="mlx", batch_size=4)(text)
    b = NER.from_pretrained(folder, backend="torch", device="cpu", batch_size=4)(text)
    assert [(e.start, e.end, e.label) for e in a] == [(e.start, e.end, e.label) for e in b]


def test_quantized_folders_run_on_torch_dequantized(make_checkpoint, tmp_path):
    from anno_mlx.convert import convert

    src = make_checkpoint(
        head="token-classification", hidden_size=64, intermediate_size=128, num_attention_heads=4
    )
    convert(src, tmp_path / "q8", quantize=True, q_bits=8, q_group_size=64, log=lambda m: None)
    mlx_model, tokenizer = load(tmp_path / "q8", backend="mlx")
    torch_model, _ = load(tmp_path / "q8", backend="torch", device="cpu")
    ids, mask = padded_batch(
        np.random.default_rng(0), [60, 33], mlx_model.args.vocab_size, tokenizer.pad_token_id
    )
    # The same dequantized weights: equal up to float rounding, not up to quantization error.
    assert (
        np.abs(runner_for(torch_model)(ids, mask) - runner_for(mlx_model)(ids, mask))[mask.astype(bool)].max()
        <= 1e-3
    )


def test_backend_choices(monkeypatch):
    assert backends.choose("auto").name == ("mlx" if backends.apple_silicon() else "torch")
    assert backends.choose("mlx", "cpu") == backends.Backend("mlx", "cpu")
    with pytest.raises(AnnoError, match="backend 'jax' is unknown"):
        backends.choose("jax")
    with pytest.raises(AnnoError, match="not cuda; use --backend torch"):
        backends.choose("mlx", "cuda")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(AnnoError, match="sees no CUDA device"):
            backends.choose("torch", "cuda")
    monkeypatch.setattr(backends, "torch_available", lambda: False)
    with pytest.raises(AnnoError, match=r"pip install 'anno-mlx\[torch\]'"):
        backends.choose("torch")
    assert backends.choose("auto").name == "mlx"  # without torch, auto falls back to MLX


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


needs_cuda = pytest.mark.skipif(not _cuda(), reason="needs an NVIDIA GPU; run on a CUDA machine")


@needs_cuda
def test_cuda_runs_bfloat16_by_default_and_matches_the_cpu(make_checkpoint):
    import torch

    folder = make_checkpoint(
        head="token-classification",
        hidden_size=64,
        intermediate_size=128,
        num_attention_heads=4,
        local_attention=16,
        max_position_embeddings=512,
    )
    cpu_model, tokenizer = load(folder, backend="torch", device="cpu")
    gpu_model, _ = load(folder, backend="torch", device="cuda")
    gpu32, _ = load(folder, backend="torch", device="cuda", dtype="float32")
    assert next(gpu_model.parameters()).dtype == torch.bfloat16
    ids, mask = padded_batch(
        np.random.default_rng(3), [300, 170, 40], cpu_model.args.vocab_size, tokenizer.pad_token_id
    )
    real = mask.astype(bool)
    reference = runner_for(cpu_model)(ids, mask)[real]

    def relative(out):
        return np.linalg.norm(out[real] - reference) / np.linalg.norm(reference)

    assert relative(runner_for(gpu32)(ids, mask)) < 1e-4
    assert relative(runner_for(gpu_model)(ids, mask)) < 3e-2


@needs_cuda
def test_same_entities_on_cuda_in_float32(converted_model):
    text = "Ada Lovelace worked with Charles Babbage in London. Marie Curie moved to Paris. " * 40
    on_cpu = NER.from_pretrained(converted_model, backend="torch", device="cpu")(text)
    on_gpu = NER.from_pretrained(converted_model, backend="torch", device="cuda", dtype="float32")
    assert on_gpu.runs_on == "PyTorch on cuda"
    assert [(e.start, e.end, e.label) for e in on_cpu] == [(e.start, e.end, e.label) for e in on_gpu(text)]
