"""Training throughput of scaling_lib's GPT next to a nanoGPT-style GPT of the same shape.

For each shape ``d_model,n_layers,n_heads`` this times full training steps
(forward, loss, backward, gradient clipping at 1.0, AdamW update, zeroing the
gradients) of

* **ours**: :class:`scaling_lib.training.model.GPT` with the trainer's loss
  (:func:`~scaling_lib.training.model.lm_loss`: summed cross-entropy plus a
  z-loss of 1e-4, divided by the token count), AdamW with the trainer's
  weight-decay groups;
* **nanogpt** (the default reference): a GPT written here in the style of
  Karpathy's nanoGPT ``model.py`` with ``dropout=0, bias=False``: learned
  positions, LayerNorm with a gain and no bias, causal
  ``scaled_dot_product_attention(is_causal=True)``, a GELU MLP of width
  ``4 d``, a head tied to the token embedding, ``F.cross_entropy``, and its
  own AdamW (decay on matrices only) with the same settings as ours;
* **masked** (``--ref masked``, labelled as such): a textbook GPT that computes
  attention as an explicit masked softmax over a ``(T, T)`` score matrix and
  uses LayerNorms and Linears with biases.  This is a slower baseline than
  nanoGPT; the library's earlier benchmark used it.

The two models are timed interleaved in one process (rounds of ``--steps``
steps each, default one, ours and the reference alternating, the order
flipping every round) so that load from other processes on a shared machine
hits both alike; the table shows medians over the rounds and the median of
the per-round ratios.  On the CPU the rates are by default measured with the
thread's CPU time (``time.thread_time``), which on a loaded machine does not
count the time the thread waits for a core; the wall-clock ratio is printed
beside it.  Each row also gives the training FLOPs per token of both models
(``6 x`` matrix-multiply parameters, head included, plus causal attention
``6 L T d``), so that the reader can see how much of a gap is arithmetic.

``--ablate qk-norm-rope`` times, in place of ours, our model with the
queries and keys passed to attention as they leave the QKV projection (no
qk-norm, no rotary rotation): not the trained architecture, labelled as such,
and there to show how much of a gap those two computations account for
(nanoGPT has neither; they cost no matrix FLOPs, so the FLOP columns do not
see them).

On CUDA both models run under bf16 autocast and ``torch.compile`` with a fused
AdamW, and the MFU (``6 N`` FLOPs per token over the device's dense bf16 peak,
named with ``--peak``) is printed as well.

Usage::

    .venv/bin/python benchmarks/bench_train.py --threads 1
    .venv/bin/python benchmarks/bench_train.py --shapes 64,3,4 --ref masked --rounds 3
    .venv/bin/python benchmarks/bench_train.py --shapes 128,4,8 --ablate qk-norm-rope

Timings belong here, never in the tests.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from scaling_lib.training.model import GPT, Attention, GPTConfig, lm_loss

#: dense (no sparsity) bf16 tensor-core peaks in FLOP/s, by a substring of the device name
BF16_PEAKS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12, "L4": 121e12}


def bf16_peak(device_name: str) -> tuple[str, float]:
    """``(name, peak FLOP/s)`` of the dense bf16 peak for a CUDA device name (H100 if unknown)."""
    for key, peak in BF16_PEAKS.items():
        if key in device_name:
            return key, peak
    return "H100 (assumed)", BF16_PEAKS["H100"]


# ----------------------------------------------------------------------------- nanoGPT-style reference


class NanoBlock(nn.Module):
    """Pre-norm block in the style of nanoGPT: fused QKV, SDPA (causal), GELU MLP of ``4 d``."""

    def __init__(self, d: int, h: int) -> None:
        super().__init__()
        self.h = h
        self.ln_1 = nn.Parameter(torch.ones(d))
        self.c_attn = nn.Linear(d, 3 * d, bias=False)
        self.attn_proj = nn.Linear(d, d, bias=False)
        self.ln_2 = nn.Parameter(torch.ones(d))
        self.c_fc = nn.Linear(d, 4 * d, bias=False)
        self.mlp_proj = nn.Linear(4 * d, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape  # (B, T, C)
        a = F.layer_norm(x, (C,), self.ln_1, None, 1e-5)
        q, k, v = self.c_attn(a).split(C, dim=2)
        q, k, v = (t.view(B, T, self.h, C // self.h).transpose(1, 2) for t in (q, k, v))  # (B, H, T, hd)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, hd)
        x = x + self.attn_proj(y.transpose(1, 2).contiguous().view(B, T, C))
        m = F.layer_norm(x, (C,), self.ln_2, None, 1e-5)
        return x + self.mlp_proj(F.gelu(self.c_fc(m)))


class NanoGPT(nn.Module):
    """nanoGPT-style GPT (dropout 0, no biases, tied head), written for this benchmark."""

    def __init__(self, d: int, n_layers: int, h: int, vocab: int, T: int) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(T, d)
        self.blocks = nn.ModuleList(NanoBlock(d, h) for _ in range(n_layers))
        self.ln_f = nn.Parameter(torch.ones(d))
        for name, p in self.named_parameters():
            if p.ndim == 2:
                std = 0.02 / math.sqrt(2 * n_layers) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, mean=0.0, std=std)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape  # (B, T)
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))  # (B, T, C)
        for b in self.blocks:
            x = b(x)
        x = F.layer_norm(x, (x.shape[-1],), self.ln_f, None, 1e-5)
        return F.linear(x, self.wte.weight)  # (B, T, V), tied head

    @staticmethod
    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))

    def matmul_params(self) -> int:
        """Parameters that enter a matrix multiply per token (head counted, positions not)."""
        d = self.wte.weight.shape[1]
        return len(self.blocks) * 12 * d * d + self.wte.weight.numel()


# ----------------------------------------------------------------------------- masked-softmax reference


class MaskedBlock(nn.Module):
    """Textbook block with an explicit masked-softmax attention (labelled ``masked`` in the table)."""

    def __init__(self, d: int, h: int, T: int) -> None:
        super().__init__()
        self.h = h
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.out = nn.Linear(4 * d, d)
        self.register_buffer("mask", torch.tril(torch.ones(T, T, dtype=torch.bool)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape  # (B, T, C)
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.h, C // self.h).transpose(1, 2) for t in (q, k, v))  # (B, H, T, hd)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // self.h)  # (B, H, T, T)
        att = att.masked_fill(~self.mask[:T, :T], float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)  # (B, T, C)
        x = x + self.proj(y)
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class MaskedGPT(nn.Module):
    """Textbook GPT with masked-softmax attention and an untied head."""

    def __init__(self, d: int, n_layers: int, h: int, vocab: int, T: int) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(T, d)
        self.blocks = nn.ModuleList(MaskedBlock(d, h, T) for _ in range(n_layers))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape  # (B, T)
        x = self.tok(idx) + self.pos(torch.arange(T, device=idx.device))  # (B, T, C)
        for b in self.blocks:
            x = b(x)
        return self.head(self.ln(x))  # (B, T, V)

    loss = staticmethod(NanoGPT.loss)

    def matmul_params(self) -> int:
        d = self.tok.weight.shape[1]
        return len(self.blocks) * 12 * d * d + self.head.weight.numel()


# ----------------------------------------------------------------------------- ours


def our_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The trainer's objective: (summed cross-entropy + summed z-loss) / tokens."""
    ce, z = lm_loss(logits, y, z_loss=1e-4)
    return (ce + z) / y.numel()


class AttentionWithoutQKNormRope(Attention):
    """Our attention with queries and keys straight from the projection (the ``--ablate`` row; not our model)."""

    def forward(self, x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape  # (B, T, C)
        H, hd = self.n_heads, self.head_dim
        w_qk, w_v = self.qkv.weight.split(2 * C)  # (2C, C), (C, C)
        qk = F.linear(x, w_qk).view(B, T, 2 * H, hd)  # (B, T, 2H, hd)
        v = F.linear(x, w_v).view(B, T, H, hd)  # (B, T, H, hd)
        q, k = (t.transpose(1, 2) for t in qk.split(H, dim=2))  # (B, H, T, hd) each
        y = F.scaled_dot_product_attention(q, k, v.transpose(1, 2), is_causal=True)  # (B, H, T, hd)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)


def ablated(model: GPT) -> GPT:
    """``model`` with every attention layer swapped for :class:`AttentionWithoutQKNormRope` (same weights)."""
    for block in model.blocks:
        block.attn.__class__ = AttentionWithoutQKNormRope
    return model


def our_matmul_params(cfg: GPTConfig) -> int:
    d, f = cfg.d_model, cfg.hidden
    return cfg.n_layers * (4 * d * d + 3 * d * f) + cfg.vocab_size * d


def train_flops_per_token(matmul_params: int, n_layers: int, seq_len: int, d: int) -> float:
    """``6 x`` matmul parameters plus causal attention (scores and values, mean context ``T/2``)."""
    return 6.0 * matmul_params + 6.0 * n_layers * seq_len * d


# ----------------------------------------------------------------------------- timing


def decay_groups(model: nn.Module, weight_decay: float = 0.1) -> list[dict]:
    """Weight decay on matrices, none on gains (the trainer's and nanoGPT's split)."""
    params = list(model.parameters())
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def make_step(model: nn.Module, loss_fn, batch: torch.Tensor, device: str, compile_model: bool):
    """A closure running one full training step of ``model`` on ``batch``."""
    model = model.to(device)
    on_cuda = device.startswith("cuda")
    opt = torch.optim.AdamW(decay_groups(model), lr=1e-3, betas=(0.9, 0.95), eps=1e-8, fused=on_cuda)
    fwd = torch.compile(model) if compile_model else model
    x, y = batch[:, :-1].to(device), batch[:, 1:].to(device)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if on_cuda else torch.autocast("cpu", enabled=False)

    def step() -> None:
        with amp:
            loss = loss_fn(fwd(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def timed(step, steps: int, device: str) -> tuple[float, float]:
    """Wall seconds and this thread's CPU seconds for ``steps`` calls of ``step``.

    With one torch thread on the CPU every kernel, backward included, runs on
    the calling thread, so its CPU time is the work of the step alone: on a
    machine shared with other processes it is not inflated by the time the
    thread waits for a core (cache and memory-bandwidth contention still
    show).  On CUDA only the wall time means anything.
    """
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t, c = time.perf_counter(), time.thread_time()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t, time.thread_time() - c


def compare(spec: str, args) -> dict:
    """Interleaved rounds of ours and the reference at one shape; medians."""
    d, n_layers, h = (int(v) for v in spec.split(","))
    torch.manual_seed(0)
    batch = torch.randint(0, args.vocab, (args.batch, args.seq_len + 1))
    cfg = GPTConfig(d_model=d, n_layers=n_layers, n_heads=h, vocab_size=args.vocab, seq_len=args.seq_len)
    ours = GPT(cfg) if args.ablate == "none" else ablated(GPT(cfg))
    ref_cls = NanoGPT if args.ref == "nanogpt" else MaskedGPT
    ref = ref_cls(d, n_layers, h, args.vocab, args.seq_len)
    compile_model = args.device.startswith("cuda") and not args.no_compile
    steps = {"ours": make_step(ours, our_loss, batch, args.device, compile_model),
             "ref": make_step(ref, ref_cls.loss, batch, args.device, compile_model)}
    for s in steps.values():
        for _ in range(args.warmup):
            s()
    tokens = args.steps * args.batch * args.seq_len
    wall = {"ours": [], "ref": []}
    cpu = {"ours": [], "ref": []}
    for r in range(args.rounds):
        order = ("ours", "ref") if r % 2 == 0 else ("ref", "ours")
        for name in order:
            w, c = timed(steps[name], args.steps, args.device)
            wall[name].append(tokens / w)
            cpu[name].append(tokens / c if c > 0 else float("nan"))
    rates = wall if args.device.startswith("cuda") or args.clock == "wall" else cpu
    ratios = [a / b for a, b in zip(rates["ours"], rates["ref"])]  # adjacent in time: the same load
    return {
        "shape": spec,
        "n_ours": ours.num_params(), "n_ref": sum(p.numel() for p in ref.parameters()),
        "ours": statistics.median(rates["ours"]), "ref": statistics.median(rates["ref"]),
        "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
        "ours_wall": statistics.median(wall["ours"]), "ref_wall": statistics.median(wall["ref"]),
        "ratio_wall": statistics.median([a / b for a, b in zip(wall["ours"], wall["ref"])]),
        "flops_ours": train_flops_per_token(our_matmul_params(cfg), n_layers, args.seq_len, d),
        "flops_ref": train_flops_per_token(ref.matmul_params(), n_layers, args.seq_len, d),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", nargs="+", default=["24,2,2", "48,3,3", "64,3,4", "96,4,6", "128,4,8"],
                        help="d_model,n_layers,n_heads per shape")
    parser.add_argument("--ref", choices=("nanogpt", "masked"), default="nanogpt",
                        help="reference model: nanoGPT-style (default) or masked-softmax textbook GPT")
    parser.add_argument("--ablate", choices=("none", "qk-norm-rope"), default="none",
                        help="time our model without qk-norm and rotary in place of ours (labelled; not our model)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=1, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=21, help="interleaved rounds per shape")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="on the CPU: rate by this thread's CPU time (default) or by wall time")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-compile", action="store_true", help="on CUDA, skip torch.compile")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    on_cuda = args.device.startswith("cuda")
    peak_name, peak = bf16_peak(torch.cuda.get_device_name()) if on_cuda else ("", 0.0)
    clock = "wall" if on_cuda else args.clock
    print(f"device={args.device}{' (' + torch.cuda.get_device_name() + ')' if on_cuda else ''} "
          f"threads={args.threads} batch={args.batch}x{args.seq_len} vocab={args.vocab} ref={args.ref}; "
          f"{args.rounds} rounds of {args.steps} step(s), ours and ref alternating; medians; "
          f"tok/s by {clock} clock" + ("" if on_cuda else "; wall ratio: the same by wall clock"))
    if args.ablate != "none":
        print("ABLATION: 'ours' below is our model WITHOUT qk-norm and rotary positions, not the trained architecture")
    print(f"{'shape':>10} {'N ours':>10} {'N ref':>10} {'ours tok/s':>11} {'ref tok/s':>10} {'ratio':>6}"
          f" {'(min-max)':>11} {'wall ratio':>10} {'MF/tok ours':>11} {'MF/tok ref':>10}"
          + (f"  MFU ours ({peak_name} {peak / 1e12:.0f} TF/s)" if on_cuda else ""))
    rows = []
    for spec in args.shapes:
        r = compare(spec, args)
        rows.append(r)
        line = (f"{spec:>10} {r['n_ours']:>10,} {r['n_ref']:>10,} {r['ours']:>11,.0f} {r['ref']:>10,.0f}"
                f" {r['ratio']:>6.2f} {r['ratio_min']:>5.2f}-{r['ratio_max']:<5.2f} {r['ratio_wall']:>10.2f}"
                f" {r['flops_ours'] / 1e6:>11.2f} {r['flops_ref'] / 1e6:>10.2f}")
        if on_cuda:
            line += f"  {6 * r['n_ours'] * r['ours'] / peak:8.1%}"
        print(line, flush=True)
    print("ratio: median over rounds of ours/ref tok/s (the two measured back to back)")
    print("MF/tok: training MFLOPs per token (6 x matmul params incl. head + causal attention 6 L T d)")
    return rows


if __name__ == "__main__":
    main()
