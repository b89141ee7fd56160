"""Training throughput of scaling_lib's GPT next to a plain textbook GPT of the same shape.

Prints tokens/s of full training steps (forward, backward, AdamW update) for
each shape, for our model (``scaling_lib.training.model.GPT`` with the trainer's loss:
cross-entropy plus z-loss) and for a reference written the textbook way
(learned positions, LayerNorm with bias, GELU MLP of width ``4 d``, attention
as an explicit masked softmax, untied head, plain ``F.cross_entropy``).  On
CUDA both run under bf16 autocast and ``torch.compile`` and the MFU
(``6 N`` FLOPs per token over the device's bf16 peak) is printed as well.

Usage::

    python benchmarks/bench_train.py --shapes 24,2,2 64,3,4 128,4,8 --threads 1

Timings belong here, never in the tests.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from scaling_lib.training.model import GPT, GPTConfig, lm_loss

H100_BF16_PEAK = 989e12  # dense bf16 FLOP/s of an H100 SXM


class RefBlock(nn.Module):
    """Textbook pre-norm block: masked-softmax attention and a GELU MLP."""

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


class RefGPT(nn.Module):
    """Plain GPT of the given shape (the comparison baseline)."""

    def __init__(self, d: int, n_layers: int, h: int, vocab: int, T: int) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(T, d)
        self.blocks = nn.ModuleList(RefBlock(d, h, T) for _ in range(n_layers))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape  # (B, T)
        x = self.tok(idx) + self.pos(torch.arange(T, device=idx.device))  # (B, T, C)
        for b in self.blocks:
            x = b(x)
        return self.head(self.ln(x))  # (B, T, V)


def tokens_per_second(model, loss_fn, batch, device, steps, warmup, compile_model) -> float:
    """Median-free simple rate: tokens of ``steps`` timed steps over their wall time."""
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), fused=device == "cuda")
    fwd = torch.compile(model) if compile_model else model
    x = batch.to(device)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)

    def step():
        with amp:
            loss = loss_fn(fwd(x[:, :-1]), x[:, 1:])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return steps * x[:, 1:].numel() / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", nargs="+", default=["24,2,2", "48,3,3", "96,4,6", "128,4,8"],
                        help="d_model,n_layers,n_heads per shape")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    on_cuda = args.device == "cuda"
    torch.manual_seed(0)
    print(f"device={args.device} threads={args.threads} batch={args.batch}x{args.seq_len} vocab={args.vocab}")
    print(f"{'shape':>12} {'N ours':>10} {'N ref':>10} {'ours tok/s':>11} {'ref tok/s':>10} {'ratio':>6}"
          + ("  MFU ours" if on_cuda else ""))
    for spec in args.shapes:
        d, n_layers, h = (int(v) for v in spec.split(","))
        batch = torch.randint(0, args.vocab, (args.batch, args.seq_len + 1))
        ours = GPT(GPTConfig(d_model=d, n_layers=n_layers, n_heads=h, vocab_size=args.vocab, seq_len=args.seq_len))

        def our_loss(logits, y):
            ce, z = lm_loss(logits, y, z_loss=1e-4)
            return (ce + z) / y.numel()

        ref = RefGPT(d, n_layers, h, args.vocab, args.seq_len)

        def ref_loss(logits, y):
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))

        # interleave the two models so that load from other processes hits both alike
        rates = {"ours": [], "ref": []}
        for _ in range(2):
            rates["ours"].append(tokens_per_second(ours, our_loss, batch, args.device, args.steps, args.warmup, on_cuda))
            rates["ref"].append(tokens_per_second(ref, ref_loss, batch, args.device, args.steps, args.warmup, on_cuda))
        r_ours, r_ref = max(rates["ours"]), max(rates["ref"])
        n_ours, n_ref = ours.num_params(), sum(p.numel() for p in ref.parameters())
        line = f"{spec:>12} {n_ours:>10,} {n_ref:>10,} {r_ours:>11,.0f} {r_ref:>10,.0f} {r_ours / r_ref:>6.2f}"
        if on_cuda:
            line += f"  {6 * n_ours * r_ours / H100_BF16_PEAK:8.1%}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
