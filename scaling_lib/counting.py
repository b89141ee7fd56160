"""Parameter, token and FLOP counting for decoder-only transformers.

Conventions written down once, here:

* ``total`` counts every trainable tensor once: token embedding, learned
  positions, all blocks, the final norm and the output head (a tied head is the
  token embedding and is not counted twice).
* ``embedding`` is the token embedding plus learned positions.
* ``non_embedding`` is everything in the blocks plus the final norm: it
  excludes the embedding *and* the output head (Kaplan et al. 2020's
  :math:`N_{ne}`).
* ``non_embedding_with_head`` is ``total - embedding``. This is what the
  open_lm testbed of Gadre et al. (2024) stores as ``params_no_embed``.

Training FLOPs for ``D`` tokens follow named conventions (see
:func:`training_flops`): ``"6ND"`` (Gadre et al. 2024, Hoffmann et al. 2022
approximation), ``"6N_ne_D"`` (Kaplan et al. 2020), ``"with_head"``
(Porian et al. 2024: non-embedding parameters plus the output head's matmul)
and ``"with_attention"`` (6ND plus the attention-score term).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

NORM_PARAMS_PER_DIM = {"layernorm": 2, "layernorm_gain": 1, "rmsnorm": 1, "none": 0}
"""Parameters per channel of each supported normalisation layer."""

FLOP_CONVENTIONS = ("6ND", "6N_ne_D", "with_head", "with_attention")
"""Names accepted by :func:`training_flops`."""

OPENLM_NAMED_CONFIGS = {
    # open_lm/model_configs/open_lm_1b.json and open_lm_7b.json (mlfoundations/open_lm)
    "open_lm_1b": {"d_model": 2048, "n_layers": 24, "n_heads": 16},
    "open_lm_7b": {"d_model": 4096, "n_layers": 32, "n_heads": 32},
}
"""Widths, depths and heads of the named open_lm configurations."""


def swiglu_hidden(d_model: int) -> int:
    """Hidden width of open_lm's (and LLaMA's) SwiGLU feed-forward block.

    ``8 d / 3`` rounded up to a multiple of 256.

    Examples
    --------
    >>> swiglu_hidden(96), swiglu_hidden(512), swiglu_hidden(2048)
    (256, 1536, 5632)
    """
    return 256 * ((int(2 * 4 * d_model / 3) + 256 - 1) // 256)


@dataclass(frozen=True)
class TransformerShape:
    """Shape of a pre-norm decoder-only transformer.

    Parameters
    ----------
    d_model, n_layers, n_heads, vocab_size : int
        Width, depth, attention heads and vocabulary size.
    seq_len : int
        Context length (used by learned positions and the attention FLOP term).
    d_ff : int or None
        Feed-forward hidden width. ``None`` means ``4 * d_model`` for
        ``ffn="mlp"`` and :func:`swiglu_hidden` for ``ffn="swiglu"``.
    tied_embeddings : bool
        Output head shares the token-embedding matrix.
    learned_positions : bool
        A learned ``(seq_len, d_model)`` position table (GPT-2); ``False`` for
        rotary or no positions.
    bias : bool
        Linear layers carry biases.
    norm : {"layernorm_gain", "layernorm", "rmsnorm", "none"}
        Normalisation layer; ``layernorm_gain`` has a gain and no bias.
    qk_norm : bool
        A norm over queries and over keys in every block (``d_model`` channels each).
    ffn : {"mlp", "swiglu"}
        Two-matrix MLP or SwiGLU (fused ``d -> 2 d_ff`` plus ``d_ff -> d``).
    final_norm : bool
        A norm after the last block.

    Examples
    --------
    >>> s = TransformerShape(96, 8, 4, 50432, ffn="swiglu")
    >>> s.ffn_hidden
    256
    """

    d_model: int
    n_layers: int
    n_heads: int
    vocab_size: int
    seq_len: int = 2048
    d_ff: int | None = None
    tied_embeddings: bool = False
    learned_positions: bool = False
    bias: bool = False
    norm: str = "layernorm_gain"
    qk_norm: bool = False
    ffn: str = "mlp"
    final_norm: bool = True

    def __post_init__(self):
        for name in ("d_model", "n_layers", "n_heads", "vocab_size", "seq_len"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"TransformerShape.{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"TransformerShape: d_model={self.d_model} is not divisible by n_heads={self.n_heads}"
            )
        if self.norm not in NORM_PARAMS_PER_DIM:
            raise ValueError(f"TransformerShape.norm must be one of {sorted(NORM_PARAMS_PER_DIM)}, got {self.norm!r}")
        if self.ffn not in ("mlp", "swiglu"):
            raise ValueError(f"TransformerShape.ffn must be 'mlp' or 'swiglu', got {self.ffn!r}")
        if self.d_ff is not None and self.d_ff <= 0:
            raise ValueError(f"TransformerShape.d_ff must be positive or None, got {self.d_ff!r}")

    @property
    def ffn_hidden(self) -> int:
        """Feed-forward hidden width actually used."""
        if self.d_ff is not None:
            return int(self.d_ff)
        return 4 * self.d_model if self.ffn == "mlp" else swiglu_hidden(self.d_model)


def param_counts(shape: TransformerShape) -> dict:
    """Count the parameters of a transformer, in total and by part.

    Parameters
    ----------
    shape : TransformerShape

    Returns
    -------
    dict
        Integer counts: ``total``, ``non_embedding``, ``embedding``, ``head``,
        ``non_embedding_with_head``, and the parts ``token_embedding``,
        ``position_embedding``, ``attention``, ``ffn``, ``norms`` (all blocks
        plus the final norm) and ``per_layer``. ``head`` is 0 for a tied head.

    Examples
    --------
    GPT-2 small (tied, learned positions, biases, LayerNorm):

    >>> gpt2 = TransformerShape(768, 12, 12, 50257, seq_len=1024, tied_embeddings=True,
    ...                         learned_positions=True, bias=True, norm="layernorm")
    >>> param_counts(gpt2)["total"]
    124439808
    """
    d, L, V = shape.d_model, shape.n_layers, shape.vocab_size
    h = shape.ffn_hidden
    b = 1 if shape.bias else 0
    norm = NORM_PARAMS_PER_DIM[shape.norm] * d

    attention = (d * 3 * d + b * 3 * d) + (d * d + b * d)  # qkv projection + output projection
    if shape.qk_norm:
        attention += 2 * norm
    if shape.ffn == "mlp":
        ffn = (d * h + b * h) + (h * d + b * d)
    else:  # swiglu: fused gate/up d -> 2h, then down h -> d
        ffn = (d * 2 * h + b * 2 * h) + (h * d + b * d)
    block_norms = 2 * norm
    per_layer = attention + ffn + block_norms

    token_embedding = V * d
    position_embedding = shape.seq_len * d if shape.learned_positions else 0
    head = 0 if shape.tied_embeddings else d * V  # the head carries no bias
    norms = L * block_norms + (norm if shape.final_norm else 0)
    non_embedding = L * per_layer + (norm if shape.final_norm else 0)
    embedding = token_embedding + position_embedding
    total = embedding + non_embedding + head
    return {
        "total": int(total),
        "non_embedding": int(non_embedding),
        "embedding": int(embedding),
        "head": int(head),
        "non_embedding_with_head": int(non_embedding + head),
        "token_embedding": int(token_embedding),
        "position_embedding": int(position_embedding),
        "attention": int(L * attention),
        "ffn": int(L * ffn),
        "norms": int(norms),
        "per_layer": int(per_layer),
    }


def training_flops(shape: TransformerShape, tokens, convention: str = "6ND"):
    """Training FLOPs for ``tokens`` tokens under a named convention.

    Parameters
    ----------
    shape : TransformerShape
    tokens : float or array_like
        Training tokens ``D``.
    convention : {"6ND", "6N_ne_D", "with_head", "with_attention"}
        ``"6ND"``: ``6 N D`` with ``N`` the total parameter count (Gadre et al.
        2024 eq. 4). ``"6N_ne_D"``: ``6 N_ne D`` (Kaplan et al. 2020).
        ``"with_head"``: ``6 (N_ne + d_model * vocab_size) D``; the head's
        matmul is counted even when it is tied (Porian et al. 2024).
        ``"with_attention"``: ``6 N D + 6 n_layers seq_len d_model D``, the
        attention-score term of Kaplan et al. 2020 (Table 1) added to ``6ND``.

    Returns
    -------
    float or numpy.ndarray

    Examples
    --------
    >>> s = TransformerShape(64, 2, 2, 1024, seq_len=128)
    >>> n = param_counts(s)["total"]
    >>> training_flops(s, 1000.0) == 6 * n * 1000.0
    True
    """
    counts = param_counts(shape)
    if np.any(np.asarray(tokens, dtype=float) < 0):
        raise ValueError("training_flops: tokens must be non-negative")
    if convention == "6ND":
        n = counts["total"]
        extra = 0.0
    elif convention == "6N_ne_D":
        n = counts["non_embedding"]
        extra = 0.0
    elif convention == "with_head":
        n = counts["non_embedding"] + shape.d_model * shape.vocab_size
        extra = 0.0
    elif convention == "with_attention":
        n = counts["total"]
        extra = 6.0 * shape.n_layers * shape.seq_len * shape.d_model
    else:
        raise ValueError(f"unknown FLOP convention {convention!r}; choose one of {FLOP_CONVENTIONS}")
    return _plain((6.0 * n + extra) * np.asarray(tokens, dtype=float))


def _plain(value):
    """A 0-d result as a Python float, anything else unchanged."""
    return float(value) if np.ndim(value) == 0 else value


def tokens_for(n_params, multiplier):
    """Training tokens ``D = M N`` for a token multiplier ``M``.

    Examples
    --------
    >>> tokens_for(1e6, 20)
    20000000.0
    """
    return _plain(np.multiply(multiplier, n_params, dtype=float))


def token_multiplier(n_params, tokens):
    """Token multiplier ``M = D / N`` (tokens per parameter).

    Examples
    --------
    >>> token_multiplier(1e6, 2e7)
    20.0
    """
    return _plain(np.divide(tokens, n_params, dtype=float))


_OPENLM_NAME = re.compile(r"d=(\d+)_l=(\d+)_h=(\d+)")


def openlm_shape(model: str, vocab_size: int = 50432, seq_len: int = 2048, qk_norm: bool = False) -> TransformerShape:
    """The :class:`TransformerShape` of an open_lm model name.

    open_lm models (Gadre et al. 2024) use rotary positions, SwiGLU
    feed-forward blocks without biases, gain-only LayerNorm and an untied head.
    ``model`` is a shape name ``d=<width>_l=<layers>_h=<heads>`` (any prefix
    such as a config path is ignored) or a named config in
    :data:`OPENLM_NAMED_CONFIGS`.

    The testbed's stored ``params`` match ``qk_norm=False``: its runs trained
    with qk-norm, but the stored counts leave those gains out
    (``2 * d_model`` per layer, under 0.03% of any model).

    Examples
    --------
    >>> param_counts(openlm_shape("scaling/open_lm_configs/d=96_l=8_h=4.json"))["total"]
    10569312
    """
    match = _OPENLM_NAME.search(model)
    if match:
        d, l, h = (int(g) for g in match.groups())
    else:
        key = model.rsplit("/", 1)[-1].removesuffix(".json")
        if key not in OPENLM_NAMED_CONFIGS:
            raise ValueError(
                f"openlm_shape: cannot read a shape from {model!r}; expected 'd=<w>_l=<layers>_h=<heads>' "
                f"or one of {sorted(OPENLM_NAMED_CONFIGS)}"
            )
        cfg = OPENLM_NAMED_CONFIGS[key]
        d, l, h = cfg["d_model"], cfg["n_layers"], cfg["n_heads"]
    return TransformerShape(
        d_model=d, n_layers=l, n_heads=h, vocab_size=vocab_size, seq_len=seq_len,
        ffn="swiglu", norm="layernorm_gain", bias=False, qk_norm=qk_norm,
    )
