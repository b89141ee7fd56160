"""Tests for scaling_lib.training.model: parameter counts, causality, loss."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scaling_lib import counting
from scaling_lib.training.model import GPT, GPTConfig, lm_loss, swiglu_width


@pytest.mark.parametrize(
    "d,l,h,v,ff",
    [(24, 2, 2, 1024, None), (32, 2, 2, 1024, None), (64, 3, 4, 1024, None), (48, 1, 3, 100, 64), (128, 4, 8, 1024, None)],
)
def test_num_params_matches_counting(d, l, h, v, ff):
    cfg = GPTConfig(d_model=d, n_layers=l, n_heads=h, vocab_size=v, seq_len=32, d_ff=ff)
    counts = counting.param_counts(cfg.shape())
    model = GPT(cfg)
    assert model.num_params() == counts["total"]
    assert model.embed.weight.numel() == counts["embedding"]
    assert model.head.weight.numel() == v * d  # untied head


def test_swiglu_width():
    assert swiglu_width(64) == 176 and swiglu_width(24) == 64
    assert GPTConfig(d_model=64, n_layers=1, n_heads=4, d_ff=100).hidden == 100


def test_forward_shape_and_causality():
    torch.manual_seed(0)
    model = GPT(GPTConfig(d_model=32, n_layers=2, n_heads=2, vocab_size=50, seq_len=16)).eval()
    idx = torch.randint(0, 50, (2, 16))
    out = model(idx)
    assert out.shape == (2, 16, 50)
    idx2 = idx.clone()
    idx2[:, 10:] = (idx2[:, 10:] + 1) % 50
    out2 = model(idx2)
    torch.testing.assert_close(out[:, :10], out2[:, :10])
    assert not torch.allclose(out[:, 10:], out2[:, 10:])


def test_too_long_sequence_is_rejected():
    model = GPT(GPTConfig(d_model=16, n_layers=1, n_heads=2, vocab_size=10, seq_len=8))
    with pytest.raises(ValueError, match="exceeds the model's seq_len 8"):
        model(torch.zeros(1, 9, dtype=torch.long))


@pytest.mark.parametrize(
    "kwargs,msg",
    [({"d_model": 30, "n_heads": 4}, "not divisible"), ({"d_model": 30, "n_heads": 10}, "must be even"),
     ({"d_model": 0, "n_heads": 1}, "positive int")],
)
def test_config_errors(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        GPTConfig(n_layers=1, **kwargs)


def test_lm_loss_matches_cross_entropy_and_z_loss():
    torch.manual_seed(1)
    logits = torch.randn(3, 5, 7)
    targets = torch.randint(0, 7, (3, 5))
    targets[2, 3:] = -100
    ce, z = lm_loss(logits, targets, z_loss=1e-2)
    valid = targets != -100
    ref_ce = F.cross_entropy(logits[valid], targets[valid], reduction="sum")
    ref_z = 1e-2 * torch.logsumexp(logits[valid], dim=-1).square().sum()
    torch.testing.assert_close(ce, ref_ce)
    torch.testing.assert_close(z, ref_z)
    assert float(lm_loss(logits, targets)[1]) == 0.0


@pytest.mark.parametrize("z_loss", [0.0, 1e-2])
def test_lm_loss_gradient_matches_autograd_reference(z_loss):
    torch.manual_seed(2)
    logits = torch.randn(2, 6, 9, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 9, (2, 6))
    targets[0, :2] = -100
    ce, z = lm_loss(logits.float(), targets, z_loss=z_loss)
    (grad,) = torch.autograd.grad(0.7 * ce + 1.3 * z, logits)
    valid = targets != -100
    rows = logits[valid]
    ref = 0.7 * F.cross_entropy(rows, targets[valid], reduction="sum") \
        + 1.3 * z_loss * torch.logsumexp(rows, dim=-1).square().sum()
    (ref_grad,) = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-6)
    assert float(grad[0, :2].abs().max()) == 0.0


def test_uniform_init_loss_near_log_vocab():
    torch.manual_seed(0)
    model = GPT(GPTConfig(d_model=32, n_layers=2, n_heads=2, vocab_size=256, seq_len=16))
    idx = torch.randint(0, 256, (4, 17))
    with torch.no_grad():
        ce, _ = lm_loss(model(idx[:, :-1]), idx[:, 1:])
    assert abs(float(ce) / idx[:, 1:].numel() - np.log(256)) < 0.1
