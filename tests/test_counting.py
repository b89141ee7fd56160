"""Tests for scaling_lib.counting: parameter counts, tokens and FLOP conventions."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from scaling_lib import counting, runs
from scaling_lib.counting import TransformerShape, param_counts, training_flops


from conftest import OPENLM, needs_openlm

MODELS = OPENLM / "models"


# ----------------------------------------------------------------------------- published counts


def _published_shapes():
    shapes = {}
    for path in sorted(MODELS.glob("*.json")) if MODELS.is_dir() else []:
        hp = json.loads(path.read_text())["hyperparameters"]
        shapes.setdefault(hp["model"], set()).add((hp["params"], hp["params_no_embed"]))
    return shapes


@needs_openlm
def test_every_published_shape_is_reproduced_exactly():
    shapes = _published_shapes()
    names = {Path(m).name.removesuffix(".json") for m in shapes}
    assert names == {"d=96_l=8_h=4", "d=512_l=8_h=4", "d=576_l=24_h=8", "d=1024_l=24_h=8",
                     "open_lm_1b", "open_lm_7b"}
    for model, values in shapes.items():
        assert len(values) == 1, f"{model}: runs disagree on the parameter count"
        params, params_no_embed = values.pop()
        counts = param_counts(counting.openlm_shape(model))
        assert counts["total"] == params, model
        assert counts["non_embedding_with_head"] == params_no_embed, model
        assert counts["total"] - counts["embedding"] == params_no_embed, model


def test_openlm_named_and_parsed_shapes():
    s = counting.openlm_shape("open_lm_1b")
    assert (s.d_model, s.n_layers, s.n_heads, s.vocab_size) == (2048, 24, 16, 50432)
    assert param_counts(s)["total"] == 1_439_795_200
    assert param_counts(counting.openlm_shape("open_lm_7b"))["total"] == 6_889_410_560
    s = counting.openlm_shape("scaling/open_lm_configs/d=576_l=24_h=8.json")
    assert (s.d_model, s.n_layers, s.n_heads) == (576, 24, 8)
    with pytest.raises(ValueError, match="cannot read a shape"):
        counting.openlm_shape("gpt2-medium")


def test_qk_norm_gains_are_what_the_published_counts_leave_out():
    plain = param_counts(counting.openlm_shape("d=96_l=8_h=4"))
    with_qk = param_counts(counting.openlm_shape("d=96_l=8_h=4", qk_norm=True))
    assert with_qk["total"] - plain["total"] == 2 * 96 * 8


def test_gpt2_small():
    gpt2 = TransformerShape(768, 12, 12, 50257, seq_len=1024, tied_embeddings=True,
                            learned_positions=True, bias=True, norm="layernorm")
    counts = param_counts(gpt2)
    assert counts["total"] == 124_439_808
    assert counts["head"] == 0
    assert counts["embedding"] == 50257 * 768 + 1024 * 768
    # Kaplan's N_ne ~ 12 n_layers d^2 (up to biases and norms)
    assert counts["non_embedding"] == pytest.approx(12 * 12 * 768**2, rel=0.01)


def test_swiglu_hidden_width():
    assert [counting.swiglu_hidden(d) for d in (96, 512, 576, 1024, 2048, 4096)] == \
        [256, 1536, 1536, 2816, 5632, 11008]


def test_parts_add_up():
    for shape in (TransformerShape(64, 3, 4, 1000, seq_len=32, learned_positions=True, bias=True),
                  TransformerShape(96, 2, 4, 500, ffn="swiglu", qk_norm=True, norm="rmsnorm")):
        c = param_counts(shape)
        assert c["total"] == c["embedding"] + c["non_embedding"] + c["head"]
        assert c["embedding"] == c["token_embedding"] + c["position_embedding"]
        assert c["non_embedding"] == c["attention"] + c["ffn"] + c["norms"]
        final_norm = counting.NORM_PARAMS_PER_DIM[shape.norm] * shape.d_model
        assert c["non_embedding"] == shape.n_layers * c["per_layer"] + final_norm


# ----------------------------------------------------------------------------- against torch modules


class _Norm(nn.Module):
    def __init__(self, d, kind):
        super().__init__()
        if kind in ("layernorm", "layernorm_gain", "rmsnorm"):
            self.g = nn.Parameter(torch.ones(d))
        if kind == "layernorm":
            self.b = nn.Parameter(torch.zeros(d))


class _Block(nn.Module):
    def __init__(self, s: TransformerShape):
        super().__init__()
        d, h = s.d_model, s.ffn_hidden
        self.n1, self.n2 = _Norm(d, s.norm), _Norm(d, s.norm)
        self.qkv = nn.Linear(d, 3 * d, bias=s.bias)
        self.proj = nn.Linear(d, d, bias=s.bias)
        if s.qk_norm:
            self.qn, self.kn = _Norm(d, s.norm), _Norm(d, s.norm)
        self.up = nn.Linear(d, (2 if s.ffn == "swiglu" else 1) * h, bias=s.bias)
        self.down = nn.Linear(h, d, bias=s.bias)


class _Reference(nn.Module):
    """A module with the parameter tensors a TransformerShape describes (no forward)."""

    def __init__(self, s: TransformerShape):
        super().__init__()
        self.tok = nn.Embedding(s.vocab_size, s.d_model)
        if s.learned_positions:
            self.pos = nn.Embedding(s.seq_len, s.d_model)
        self.blocks = nn.ModuleList(_Block(s) for _ in range(s.n_layers))
        if s.final_norm:
            self.norm = _Norm(s.d_model, s.norm)
        self.head = nn.Linear(s.d_model, s.vocab_size, bias=False)
        if s.tied_embeddings:
            self.head.weight = self.tok.weight


@pytest.mark.parametrize("kwargs", [
    {},
    {"tied_embeddings": True, "learned_positions": True, "bias": True, "norm": "layernorm"},
    {"ffn": "swiglu", "qk_norm": True},
    {"ffn": "swiglu", "d_ff": 100, "bias": True, "norm": "rmsnorm", "final_norm": False},
    {"norm": "none", "tied_embeddings": True},
])
def test_counts_match_torch_modules(kwargs):
    shape = TransformerShape(48, 3, 4, 211, seq_len=17, **kwargs)
    model = _Reference(shape)
    assert param_counts(shape)["total"] == sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- tokens and FLOPs


def test_tokens_and_multiplier():
    assert counting.tokens_for(1e6, 20) == 2e7
    assert counting.token_multiplier(1e6, 2e7) == 20.0
    np.testing.assert_allclose(counting.tokens_for(np.array([1e6, 2e6]), 5), [5e6, 1e7])


def test_flop_conventions():
    s = TransformerShape(64, 2, 4, 1000, seq_len=128)
    c = param_counts(s)
    D = 3e6
    assert training_flops(s, D) == 6 * c["total"] * D
    assert training_flops(s, D, "6N_ne_D") == 6 * c["non_embedding"] * D
    assert training_flops(s, D, "with_head") == 6 * (c["non_embedding"] + 64 * 1000) * D
    assert training_flops(s, D, "with_attention") == 6 * c["total"] * D + 6 * 2 * 128 * 64 * D
    np.testing.assert_allclose(training_flops(s, np.array([1.0, 2.0])), [6 * c["total"], 12 * c["total"]])


def test_with_head_counts_a_tied_head_matmul():
    untied = TransformerShape(64, 2, 4, 1000)
    tied = TransformerShape(64, 2, 4, 1000, tied_embeddings=True)
    assert training_flops(tied, 1e6, "with_head") == training_flops(untied, 1e6, "with_head")
    assert training_flops(tied, 1e6) < training_flops(untied, 1e6)


def test_bad_inputs():
    s = TransformerShape(64, 2, 4, 1000)
    with pytest.raises(ValueError, match="unknown FLOP convention 'kaplan'"):
        training_flops(s, 1e6, "kaplan")
    with pytest.raises(ValueError, match="tokens must be non-negative"):
        training_flops(s, -1.0)
    with pytest.raises(ValueError, match="not divisible by n_heads"):
        TransformerShape(65, 2, 4, 1000)
    with pytest.raises(ValueError, match="norm must be one of"):
        TransformerShape(64, 2, 4, 1000, norm="batchnorm")
    with pytest.raises(ValueError, match="n_layers must be a positive integer"):
        TransformerShape(64, 0, 4, 1000)
    with pytest.raises(ValueError, match="ffn must be"):
        TransformerShape(64, 2, 4, 1000, ffn="moe")


def test_docstring_examples():
    import doctest

    from scaling_lib import counting as module

    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
