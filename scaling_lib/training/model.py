"""A decoder-only GPT in the open_lm family used by Gadre et al. (2024).

The architecture follows the models of the paper's testbed (open_lm, Sec. 3 and
Appendix of Gadre et al. 2024): pre-norm residual blocks, rotary position
embeddings, layer norms with a gain and no bias, a norm on queries and keys
(qk-norm), a SwiGLU feed-forward network, no biases anywhere, and an untied
output head.  Causal attention runs through
``torch.nn.functional.scaled_dot_product_attention``.

Choices that differ from a textbook GPT and why:

* **Untied head.**  open_lm keeps separate input embedding and output head
  matrices, and the paper's parameter count ``N`` includes both.  We do the
  same so that ``N`` means the same thing for our runs and for the published
  testbed (Porian et al. 2024 discuss how much the head matters at small
  scale; both counts are in the run table).
* **qk-norm per head.**  Queries and keys are normalised over each head's
  channels, with a separate gain for every head and channel (``d_model`` gains
  for q and for k in each layer, the same count as open_lm's full-width
  qk-norm).
* **SwiGLU width.**  The hidden width defaults to the nearest multiple of 8
  above ``8 d / 3`` (the parameter-matched SwiGLU width); open_lm rounds up to
  a multiple of 256, which would make the MLP of a ``d = 64`` model four times
  too wide, so the width is explicit here and part of the shape.

Speed on the CPU (the function computed is unchanged; the tests compare it
with a textbook implementation of the same math on random weights).  Eager
PyTorch on one thread is bound by the passes its kernels make over the
activations, so the forward and backward are arranged to make few:

* the loss takes one softmax over the logits; cross-entropy and the z-loss's
  log-sum-exp both follow from the target's probability (no second pass, no
  log-softmax), and the backward writes its gradient into that softmax;
* norms with a gain over the last dimension are single ``F.layer_norm`` calls;
* the qk-norm's mean subtraction is folded into the QKV weights (it is
  linear), queries and keys are normalised, scaled and rotated together by
  one autograd function with a hand-written backward, and the rotary tables
  are built once as buffers;
* the query and key channels of each head are taken pair by pair (a fixed
  reordering of their weight rows, which changes no attention score), so
  that the rotary rotation is one complex multiply over contiguous memory
  instead of four kernels over half rows;
* the QKV and gate/up matrices stay single parameters (same layout, same
  initialisation draw for draw) but are applied as row blocks, so that every
  elementwise kernel sees contiguous inputs.

``benchmarks/bench_train.py`` times training steps against a nanoGPT-style
model of the same shape; its ``--ablate qk-norm-rope`` row shows what the
qk-norm and the rotary positions, which nanoGPT does not compute, cost.

Examples
--------
>>> import torch
>>> from scaling_lib.training.model import GPT, GPTConfig
>>> cfg = GPTConfig(d_model=32, n_layers=2, n_heads=2, vocab_size=64, seq_len=16)
>>> model = GPT(cfg)
>>> model(torch.zeros(3, 16, dtype=torch.long)).shape
torch.Size([3, 16, 64])
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from scaling_lib.configs import GPTConfig, swiglu_width  # noqa: F401  (part of this module's API)


class GainLayerNorm(nn.Module):
    """Layer norm with a learned gain and no bias (open_lm's ``gain_only`` norm).

    The statistics are taken over the last dimension; the gain may cover more
    dimensions (the per-head qk-norm gain of shape ``(H, hd)``).  A gain over
    the last dimension only goes to ``F.layer_norm`` as its weight (one fused
    kernel forward and backward).
    """

    def __init__(self, shape: int | tuple[int, ...], eps: float) -> None:
        super().__init__()
        self.shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(self.shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.shape) == 1:
            return F.layer_norm(x, self.shape, self.weight, None, self.eps)
        return F.layer_norm(x, (x.shape[-1],), eps=self.eps) * self.weight


def rotary_tables(seq_len: int, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine and sine tables of shape ``(seq_len, head_dim // 2)`` (Su et al. 2021)."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)  # (T, hd/2)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs ``(x[..., j], x[..., j + hd/2])`` of ``x`` (..., T, hd) by the tables (T, hd/2).

    The textbook form of the rotation; :class:`Attention` computes the same
    numbers on channels stored pair by pair (:func:`pair_order`,
    :func:`rotate_pairs`).
    """
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]  # (..., T, hd/2) each
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


def pair_order(head_dim: int) -> torch.Tensor:
    """The channel order ``0, h, 1, h + 1, ...`` (``h = head_dim / 2``) that stores each rotary pair side by side.

    >>> pair_order(6).tolist()
    [0, 3, 1, 4, 2, 5]
    """
    half = head_dim // 2
    return torch.stack((torch.arange(half), torch.arange(half) + half), dim=-1).flatten()


def rotate_pairs(x: torch.Tensor, table: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """Rotate the adjacent channel pairs of ``x`` (..., T, n, hd) by the angles of ``table`` (T, 1, hd/2, 2).

    ``table[..., 0]`` and ``table[..., 1]`` hold the cosines and sines;
    ``inverse`` rotates by the opposite angles (the transpose, for the
    backward).  In eager mode the pair ``(a, b)`` is the complex number
    ``a + ib`` and the rotation one complex multiply, a single kernel over
    contiguous memory; under ``torch.compile``, whose code generators do not
    take complex tensors, the same numbers come from real arithmetic.
    """
    if torch.compiler.is_compiling():
        cos, sin = table.unbind(-1)  # (T, 1, hd/2) each
        if inverse:
            sin = -sin
        a, b = x.unflatten(-1, (-1, 2)).unbind(-1)  # (..., T, n, hd/2) each
        return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)
    turn = torch.view_as_complex(table)  # (T, 1, hd/2)
    if inverse:
        turn = turn.conj()
    return torch.view_as_real(torch.view_as_complex(x.unflatten(-1, (-1, 2))) * turn).flatten(-2)


class _QKNormRope(torch.autograd.Function):
    """Per-head norm, per-head gain and rotary rotation of queries and keys, with a hand-written backward.

    Input ``c`` (B, T, 2H, hd) are the queries and keys already centred per
    head (the centring is folded into the weights, see :class:`Attention`),
    with their channels in :func:`pair_order`.  The layer norm then reduces
    to ``n = c * rstd`` with ``rstd = 1 / sqrt(mean(c^2) + eps)`` (a vector
    norm over the head's channels and one multiply; on rows of 16 channels
    the RMS-norm and layer-norm kernels take 1.6 and 3 times as long), and with
    the gain ``g`` (2H, hd)

        out = rotate_pairs(n * g).

    Backward: ``grad_r = rotate_pairs(grad, inverse=True)``;
    ``dg = sum_{B,T} grad_r * n``; ``dc`` is the layer-norm backward of
    ``grad_r * g`` (whose mean-removal term the centring projects out anyway).
    """

    @staticmethod
    def forward(ctx, c, gain, table, eps):
        hd = c.shape[-1]
        ctx.in_dtype = c.dtype
        c = c.float().contiguous()  # norms in float32 (under bf16 autocast too, as autocast runs layer norms)
        rstd = torch.linalg.vector_norm(c, dim=-1, keepdim=True).square_().div_(hd).add_(eps).rsqrt_()  # (B, T, 2H, 1)
        n = c * rstd  # (B, T, 2H, hd)
        out = rotate_pairs(n * gain, table)  # (B, T, 2H, hd)
        ctx.save_for_backward(c, n, rstd, gain, table)
        return out

    @staticmethod
    def backward(ctx, grad):
        c, n, rstd, gain, table = ctx.saved_tensors
        grad_r = rotate_pairs(grad.float().contiguous(), table, inverse=True)  # (B, T, 2H, hd)
        d_gain = (grad_r * n).sum(dim=(0, 1))  # (2H, hd)
        grad_c = torch.ops.aten.native_layer_norm_backward(
            grad_r.mul_(gain), c, [c.shape[-1]], torch.zeros_like(rstd), rstd, None, None, [True, False, False]
        )[0]
        return grad_c.to(ctx.in_dtype), d_gain.to(gain.dtype), None, None


class Attention(nn.Module):
    """Causal multi-head self-attention with rotary positions and qk-norm.

    The computation is the textbook one, ``q = rope(layer_norm_hd(x Wq) * gq)``
    (the same for ``k``), ``v = x Wv``, causal softmax attention, output
    projection, arranged to touch each activation as few times as possible:

    * the layer norm's mean subtraction is linear, so it is folded into the
      query and key rows of the QKV matrix (each head's ``hd`` rows minus
      their mean: a ``(2 C, C)`` operation per step instead of one over every
      token); the projection of the centred rows then needs only the RMS
      scaling;
    * the query and key rows, and their gains, are taken in
      :func:`pair_order` within each head, so that every rotary pair lies in
      adjacent channels.  Attention scores are sums over a head's channels, in
      any order, so the scores and the output are those of the textbook
      order; the parameters keep the textbook layout;
    * queries and keys are normalised, scaled and rotated together in one
      :class:`_QKNormRope`;
    * queries-and-keys and values are two matrix products with row blocks of
      the one ``(3 C, C)`` parameter, so that each output is contiguous; the
      attention output comes back in ``(B, T, H, hd)`` memory order, so the
      merge of the heads is a view.
    """

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.head_dim = cfg.head_dim
        self.eps = cfg.norm_eps
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        # one gain per head and channel: (H, hd), statistics over hd
        self.q_norm = GainLayerNorm((cfg.n_heads, cfg.head_dim), cfg.norm_eps)
        self.k_norm = GainLayerNorm((cfg.n_heads, cfg.head_dim), cfg.norm_eps)
        self.register_buffer("pairs", pair_order(cfg.head_dim), persistent=False)

    def forward(self, x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
        """``x`` (B, T, C); ``rope`` (T, 1, hd/2, 2) the rotary cosines and sines."""
        B, T, C = x.shape  # (B, T, C)
        H, hd = self.n_heads, self.head_dim
        w_qk, w_v = self.qkv.weight.split(2 * C)  # (2C, C), (C, C)
        w_qk = w_qk.view(2 * H, hd, C)
        w_qk = (w_qk - w_qk.mean(dim=1, keepdim=True))[:, self.pairs].reshape(2 * C, C)  # centred, pair order
        c = F.linear(x, w_qk).view(B, T, 2 * H, hd)  # (B, T, 2H, hd), centred over hd
        v = F.linear(x, w_v).view(B, T, H, hd)  # (B, T, H, hd)
        gain = torch.cat((self.q_norm.weight, self.k_norm.weight))[:, self.pairs]  # (2H, hd), pair order
        qk = _QKNormRope.apply(c, gain, rope[:T], self.eps)  # (B, T, 2H, hd)
        q, k = (t.transpose(1, 2) for t in qk.split(H, dim=2))  # (B, H, T, hd) each
        # (split before the transpose: the gradient comes back as one contiguous cat)
        y = F.scaled_dot_product_attention(q, k, v.transpose(1, 2), is_causal=True)  # (B, H, T, hd)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C); a view, no copy


class SwiGLU(nn.Module):
    """Feed-forward network ``W3 (silu(W1 x) * W2 x)`` (Shazeer 2020), no biases.

    ``W1`` and ``W2`` are the two row blocks of one ``(2 F, C)`` parameter
    ``gate_up``; they are applied as two matrix products so that the gate and
    the up projection come out contiguous (elementwise kernels on the strided
    halves of one ``(B, T, 2 F)`` output run about three times slower on CPU).
    """

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.hidden = cfg.hidden
        self.gate_up = nn.Linear(cfg.d_model, 2 * cfg.hidden, bias=False)
        self.down = nn.Linear(cfg.hidden, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w_gate, w_up = self.gate_up.weight.split(self.hidden)  # (F, C) each
        gate, up = F.linear(x, w_gate), F.linear(x, w_up)  # (B, T, F) each
        return self.down(F.silu(gate) * up)  # (B, T, C)


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm(x))`` then ``x + mlp(norm(x))``."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.attn_norm = GainLayerNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = GainLayerNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = SwiGLU(cfg)

    def forward(self, x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), rope)  # (B, T, C)
        return x + self.mlp(self.mlp_norm(x))  # (B, T, C)


class GPT(nn.Module):
    """Decoder-only language model; ``model(idx)`` returns next-token logits.

    Parameters
    ----------
    config : GPTConfig
        Shape of the model.

    Examples
    --------
    >>> import torch
    >>> model = GPT(GPTConfig(d_model=32, n_layers=1, n_heads=2, vocab_size=50, seq_len=8))
    >>> logits = model(torch.randint(0, 50, (2, 8)))
    >>> tuple(logits.shape)
    (2, 8, 50)
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.final_norm = GainLayerNorm(config.d_model, config.norm_eps)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        # rotary tables, built once: cosines and sines side by side, (T, 1, hd/2, 2)
        cos, sin = rotary_tables(config.seq_len, config.head_dim, config.rope_base)
        self.register_buffer("rope", torch.stack((cos, sin), dim=-1).unsqueeze(1), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Normal init for matrices (residual outputs scaled by ``1/sqrt(2 L)``), ones for gains."""
        std = self.config.init_std
        out_std = std / math.sqrt(2 * self.config.n_layers)
        for name, p in self.named_parameters():
            if p.ndim == 2 and name.endswith(("attn.proj.weight", "mlp.down.weight")):
                nn.init.normal_(p, mean=0.0, std=out_std)
            elif p.ndim == 2 or name == "embed.weight":
                nn.init.normal_(p, mean=0.0, std=std)
            else:
                nn.init.ones_(p)

    def num_params(self) -> int:
        """Total parameter count (embedding and head included), the paper's ``N``."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape  # (B, T)
        if T > self.config.seq_len:
            raise ValueError(f"sequence length {T} exceeds the model's seq_len {self.config.seq_len}")
        x = self.embed(idx)  # (B, T, C)
        for block in self.blocks:
            x = block(x, self.rope)  # (B, T, C)
        return self.head(self.final_norm(x))  # (B, T, V)


_TINY_PROB = 1e-30


class _CrossEntropyZLoss(torch.autograd.Function):
    """Summed cross-entropy and z-loss of ``(n, V)`` logits with a hand-written backward.

    One pass over the logits computes the softmax ``p`` (one exponential per
    logit, in ``F.softmax``); everything else comes from it without another
    exponential or log-softmax:

    * ``ce = -log p[target]`` and ``logsumexp = logit[target] - log p[target]``
      (two gathers), exact to rounding while ``p[target]`` is a normal float;
      the rare rows with ``p[target] < 1e-30`` get ``logsumexp`` from
      ``torch.logsumexp`` of their logits instead,
    * ``z = z_loss * logsumexp^2``,
    * backward: ``d/dlogits = (g_ce + 2 z_loss g_z logsumexp) p - g_ce onehot(target)``,
      written into ``p`` in place (so a second backward through the same
      graph raises instead of reading a modified tensor).

    Autograd through the same expressions would also materialise zero-filled
    ``(n, V)`` gradients for each gather and slice.
    """

    @staticmethod
    def forward(ctx, logits, targets, mask, z_loss):
        p = F.softmax(logits, dim=-1)  # (n, V)
        p_t = p.gather(1, targets.unsqueeze(1)).squeeze(1)  # (n,) probability of the target
        nll = -p_t.log()  # (n,)
        lse = logits.gather(1, targets.unsqueeze(1)).squeeze(1) + nll  # (n,) logsumexp
        tiny = p_t < _TINY_PROB  # target probability near float underflow: log(p_t) inexact
        if bool(tiny.any()):
            rows = tiny.nonzero().squeeze(1)
            lse_rows = torch.logsumexp(logits[rows], dim=1)
            lse = lse.index_copy(0, rows, lse_rows)
            nll = nll.index_copy(0, rows, lse_rows - logits[rows, targets[rows]])
        ce = (nll * mask).sum()
        z = z_loss * (lse.square() * mask).sum()
        ctx.save_for_backward(p, targets, lse, mask)
        ctx.z_loss = z_loss
        return ce, z

    @staticmethod
    def backward(ctx, g_ce, g_z):
        p, targets, lse, mask = ctx.saved_tensors
        # d ce / d logits = softmax - onehot(target); d z / d logits = 2 z_loss lse softmax
        scale = (g_ce + 2.0 * ctx.z_loss * g_z * lse) * mask  # (n,)
        grad = p.mul_(scale.unsqueeze(1))  # (n, V), in place
        grad.scatter_add_(1, targets.unsqueeze(1), (-g_ce * mask).unsqueeze(1).to(grad.dtype))
        return grad, None, None, None


def lm_loss(
    logits: torch.Tensor, targets: torch.Tensor, z_loss: float = 0.0, ignore_index: int = -100
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token cross-entropy and summed z-loss over the valid targets.

    The z-loss ``z * logsumexp(logits)^2`` (PaLM; used by open_lm with
    ``z = 1e-4``) keeps the softmax normaliser near one.  Sums, not means, are
    returned so that callers can normalise by a global token count (exact
    gradient equality across data-parallel ranks and partial batches).

    Parameters
    ----------
    logits : Tensor (B, T, V)
    targets : Tensor (B, T)
        Target ids; positions equal to ``ignore_index`` are left out.
    z_loss : float
        Coefficient of the z-loss.

    Returns
    -------
    (ce_sum, z_sum) : tuple of scalar Tensors

    Examples
    --------
    >>> import torch
    >>> ce, z = lm_loss(torch.zeros(1, 2, 4), torch.tensor([[1, -100]]))
    >>> round(float(ce), 4)
    1.3863
    """
    flat = logits.reshape(-1, logits.shape[-1]).float()  # (B*T, V)
    tgt = targets.reshape(-1)  # (B*T,)
    mask = (tgt != ignore_index).to(flat.dtype)  # (B*T,)
    return _CrossEntropyZLoss.apply(flat, tgt.clamp_min(0), mask, float(z_loss))
