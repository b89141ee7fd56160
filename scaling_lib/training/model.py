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
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from scaling_lib.configs import GPTConfig, swiglu_width  # noqa: F401  (part of this module's API)


class GainLayerNorm(nn.Module):
    """Layer norm with a learned gain and no bias (open_lm's ``gain_only`` norm)."""

    def __init__(self, shape: int | tuple[int, ...], eps: float) -> None:
        super().__init__()
        self.shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(self.shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # normalise over the last dimension only; the gain may cover more dims
        x = F.layer_norm(x, (x.shape[-1],), eps=self.eps)
        return x * self.weight


def rotary_tables(seq_len: int, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine and sine tables of shape ``(seq_len, head_dim // 2)`` (Su et al. 2021)."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)  # (T, hd/2)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs ``(x[..., :h], x[..., h:])`` of ``x`` (B, H, T, hd)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]  # (B, H, T, hd/2) each
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class Attention(nn.Module):
    """Causal multi-head self-attention with rotary positions and qk-norm."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.head_dim = cfg.head_dim
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        # one gain per head and channel: (H, hd), statistics over hd
        self.q_norm = GainLayerNorm((cfg.n_heads, cfg.head_dim), cfg.norm_eps)
        self.k_norm = GainLayerNorm((cfg.n_heads, cfg.head_dim), cfg.norm_eps)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape  # (B, T, C)
        q, k, v = self.qkv(x).split(C, dim=-1)  # (B, T, C) each
        q = self.q_norm(q.view(B, T, self.n_heads, self.head_dim))  # (B, T, H, hd)
        k = self.k_norm(k.view(B, T, self.n_heads, self.head_dim))  # (B, T, H, hd)
        v = v.view(B, T, self.n_heads, self.head_dim)  # (B, T, H, hd)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, T, hd)
        q = apply_rotary(q, cos[:T], sin[:T])
        k = apply_rotary(k, cos[:T], sin[:T])
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, hd)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C)
        return self.proj(y)


class SwiGLU(nn.Module):
    """Feed-forward network ``W3 (silu(W1 x) * W2 x)`` (Shazeer 2020), no biases."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.gate_up = nn.Linear(cfg.d_model, 2 * cfg.hidden, bias=False)
        self.down = nn.Linear(cfg.hidden, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)  # (B, T, F) each
        return self.down(F.silu(gate) * up)  # (B, T, C)


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm(x))`` then ``x + mlp(norm(x))``."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.attn_norm = GainLayerNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = GainLayerNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = SwiGLU(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin)  # (B, T, C)
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
        cos, sin = rotary_tables(config.seq_len, config.head_dim, config.rope_base)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
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
            x = block(x, self.rope_cos, self.rope_sin)  # (B, T, C)
        return self.head(self.final_norm(x))  # (B, T, V)


class _CrossEntropyZLoss(torch.autograd.Function):
    """Summed cross-entropy and z-loss of ``(n, V)`` logits with a hand-written backward.

    One log-softmax pass forward and one exponential pass backward; autograd
    through the same expressions would also materialise zero-filled ``(n, V)``
    gradients for each gather and slice, which dominates the step time of the
    smallest models.
    """

    @staticmethod
    def forward(ctx, logits, targets, mask, z_loss):
        logp = F.log_softmax(logits, dim=-1)  # (n, V)
        nll = -logp.gather(1, targets.unsqueeze(1)).squeeze(1)  # (n,)
        lse = logits[:, 0] - logp[:, 0]  # (n,) logsumexp = logit - log-prob in any column
        ce = (nll * mask).sum()
        z = z_loss * (lse.square() * mask).sum()
        ctx.save_for_backward(logp, targets, lse, mask)
        ctx.z_loss = z_loss
        return ce, z

    @staticmethod
    def backward(ctx, g_ce, g_z):
        logp, targets, lse, mask = ctx.saved_tensors
        # d ce / d logits = softmax - onehot(target); d z / d logits = 2 z_loss lse softmax
        scale = (g_ce + 2.0 * ctx.z_loss * g_z * lse) * mask  # (n,)
        grad = logp.exp().mul_(scale.unsqueeze(1))  # (n, V)
        rows = torch.arange(targets.shape[0], device=logp.device)
        grad[rows, targets] -= g_ce * mask
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
