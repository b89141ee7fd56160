"""Tests for scaling_lib.training.model: parameter counts, causality, loss."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scaling_lib import counting
from scaling_lib.training.model import (
    GPT,
    GPTConfig,
    apply_rotary,
    lm_loss,
    pair_order,
    rotary_tables,
    rotate_pairs,
    swiglu_width,
)


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


# ----------------------------------------------------------------------------- the fast model is the textbook math


def _reference_forward(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    """The model's function written the straightforward way from its parameters.

    Layer norm with a gain, per-head layer norm of q and k with an (H, hd) gain,
    the rotary rotation of channel pairs (i, i + hd/2) from freshly built tables,
    an explicit causal masked softmax, SwiGLU from the two halves of gate_up,
    an untied head.
    """
    cfg = model.config
    B, T = idx.shape
    C, H, hd, eps = cfg.d_model, cfg.n_heads, cfg.head_dim, cfg.norm_eps
    inv_freq = 1.0 / (cfg.rope_base ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    ang = torch.outer(torch.arange(T, dtype=torch.float32), inv_freq)
    cos, sin = ang.cos(), ang.sin()

    def norm(x, w):
        mu = x.mean(-1, keepdim=True)
        var = (x - mu).square().mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + eps) * w

    def rope(x):  # (B, H, T, hd)
        x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
        return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)

    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    x = model.embed.weight[idx]
    for blk in model.blocks:
        a = norm(x, blk.attn_norm.weight)
        q, k, v = (a @ blk.attn.qkv.weight.T).split(C, dim=-1)
        q = norm(q.view(B, T, H, hd), blk.attn.q_norm.weight).transpose(1, 2)
        k = norm(k.view(B, T, H, hd), blk.attn.k_norm.weight).transpose(1, 2)
        v = v.view(B, T, H, hd).transpose(1, 2)
        q, k = rope(q), rope(k)
        att = (q @ k.transpose(-1, -2)) / hd**0.5
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ blk.attn.proj.weight.T
        m = norm(x, blk.mlp_norm.weight)
        gate, up = (m @ blk.mlp.gate_up.weight.T).split(cfg.hidden, dim=-1)
        x = x + (F.silu(gate) * up) @ blk.mlp.down.weight.T
    return norm(x, model.final_norm.weight) @ model.head.weight.T


def _randomise(model: GPT, seed: int) -> None:
    """Random weights everywhere, gains included (so that no term is hidden by ones)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
            else:
                p.copy_(1.0 + 0.5 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("d,l,h,T", [(24, 2, 2, 16), (48, 1, 3, 12), (64, 2, 4, 32)])
def test_forward_loss_and_gradients_match_reference_math(d, l, h, T):
    cfg = GPTConfig(d_model=d, n_layers=l, n_heads=h, vocab_size=97, seq_len=32)
    model = GPT(cfg)
    _randomise(model, seed=d + l)
    g = torch.Generator().manual_seed(7)
    idx = torch.randint(0, 97, (3, T + 1), generator=g)
    x, y = idx[:, :-1], idx[:, 1:].clone()
    y[1, -3:] = -100
    logits = model(x)
    ref_logits = _reference_forward(model, x)
    np.testing.assert_allclose(logits.detach().numpy(), ref_logits.detach().numpy(), rtol=1e-5, atol=2e-5)

    z = 1e-4
    ce, zl = lm_loss(logits, y, z_loss=z)
    valid = y != -100
    ref_ce = F.cross_entropy(ref_logits[valid], y[valid], reduction="sum")
    ref_z = z * torch.logsumexp(ref_logits[valid], dim=-1).square().sum()
    np.testing.assert_allclose(float(ce.detach()), float(ref_ce.detach()), rtol=1e-5)
    np.testing.assert_allclose(float(zl.detach()), float(ref_z.detach()), rtol=1e-5)

    params = [p for _, p in model.named_parameters()]
    grads = torch.autograd.grad((ce + zl) / valid.sum(), params)
    ref_grads = torch.autograd.grad((ref_ce + ref_z) / valid.sum(), params)
    for (name, _), gr, rg in zip(model.named_parameters(), grads, ref_grads):
        np.testing.assert_allclose(gr.numpy(), rg.numpy(), rtol=1e-4, atol=1e-6 * float(rg.abs().max()) + 1e-7,
                                   err_msg=name)


def test_initialisation_is_fixed_by_the_seed():
    """Same seed, same draws: the parameter layout and the init order are those of the testbeds' runs."""
    cfg = GPTConfig(d_model=24, n_layers=2, n_heads=2)
    torch.manual_seed(0)
    a = GPT(cfg)
    torch.manual_seed(0)
    b = GPT(cfg)
    names = [n for n, _ in a.named_parameters()]
    assert names[:4] == ["embed.weight", "blocks.0.attn_norm.weight", "blocks.0.attn.qkv.weight",
                         "blocks.0.attn.proj.weight"]
    assert [tuple(p.shape) for p in a.parameters()][2] == (72, 24)
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), n
    # fingerprints of the initialisation of the model before the speed work (same seed, same draws)
    sd = {k: v.double() for k, v in a.state_dict().items()}
    assert sd["embed.weight"][0, :3].tolist() == pytest.approx([-0.0610559359, -0.0111449109, -0.0162337311], abs=1e-9)
    assert float(sd["blocks.1.mlp.down.weight"].sum()) == pytest.approx(0.17326424621660408, rel=1e-9)
    assert float(sd["head.weight"].abs().sum()) == pytest.approx(391.8391116103842, rel=1e-9)
    assert float(sum(v.square().sum() for v in sd.values())) == pytest.approx(144.07589760850175, rel=1e-9)


def test_lm_loss_second_backward_raises():
    """The loss writes its gradient into the saved softmax; a second backward must not read it."""
    logits = torch.randn(4, 6, requires_grad=True)
    ce, z = lm_loss(logits.unsqueeze(0), torch.tensor([[1, 2, 3, 4]]), z_loss=1e-4)
    (ce + z).backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        (ce + z).backward()


def test_lm_loss_is_stable_for_large_logits():
    logits = torch.tensor([[[300.0, 0.0, -300.0], [-1e4, 1e4, 0.0]]])
    ce, z = lm_loss(logits, torch.tensor([[2, 0]]), z_loss=1e-4)
    ref = F.cross_entropy(logits[0], torch.tensor([2, 0]), reduction="sum")
    torch.testing.assert_close(ce, ref)
    assert torch.isfinite(z)


@pytest.mark.parametrize("compiling", [False, True])
def test_rotate_pairs_is_the_textbook_rotation_in_pair_order(monkeypatch, compiling):
    """Channels in pair order rotated by ``rotate_pairs`` are the textbook rotation's channels in that order.

    ``compiling=True`` takes the real-arithmetic branch that ``torch.compile`` traces.
    """
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: compiling)
    T, hd = 7, 12
    cos, sin = rotary_tables(T, hd, 10000.0)
    table = torch.stack((cos, sin), dim=-1).unsqueeze(1)  # (T, 1, hd/2, 2)
    x = torch.randn(2, T, 3, hd, generator=torch.Generator().manual_seed(3))  # (B, T, heads, hd)
    order = pair_order(hd)
    textbook = apply_rotary(x.transpose(1, 2), cos, sin).transpose(1, 2)  # (B, T, heads, hd)
    got = rotate_pairs(x[..., order], table)
    np.testing.assert_allclose(got.numpy(), textbook[..., order].numpy(), rtol=1e-6, atol=1e-6)
    back = rotate_pairs(got, table, inverse=True)
    np.testing.assert_allclose(back.numpy(), x[..., order].numpy(), rtol=1e-5, atol=1e-6)
