"""The trainer's GPU settings (bf16 autocast, torch.compile, fused AdamW, resume) exercised on the CPU.

:func:`scaling_lib.training.train.train` selects these settings on CUDA, and
``gpu_settings=True`` selects them on the CPU too.  These tests

* check the selection: on the CPU by default ``train`` builds a non-fused
  AdamW, never calls ``torch.compile`` and runs in float32; with
  ``gpu_settings=True`` the trainer itself runs the GPU path there (finite,
  close to float32, resumable from its checkpoint);
* run the CUDA path's step (the trainer's own data order, learning-rate
  schedule, weight-decay groups, loss and checkpoint files) under
  ``torch.autocast("cpu", dtype=torch.bfloat16)``, ``torch.compile`` with the
  ``aot_eager`` backend (the inductor backend needs ~30 s of compilation per
  model on this CPU, too slow for the suite; ``aot_eager`` traces the same
  graph, forward and backward, through dynamo and AOTAutograd) and
  ``AdamW(fused=True)`` (supported on the CPU in this torch): the loss is
  finite, close to the float32 loss, and a run stopped and resumed from its
  checkpoint ends where the uninterrupted run ends.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scaling_lib.training import train as trainer
from scaling_lib.training.model import GPT, GPTConfig, lm_loss
from scaling_lib.training.train import TrainConfig

VOCAB = 48


def _cfg(tokens: int = 8 * 16 * 6) -> TrainConfig:
    return TrainConfig(
        model=GPTConfig(d_model=32, n_layers=2, n_heads=2, vocab_size=VOCAB, seq_len=16),
        tokens=tokens, batch_size=8, lr=3e-3, warmup_steps=2, eval_seqs=4,
    )


def _tokens() -> np.ndarray:
    rng = np.random.default_rng(0)
    # a learnable sequence: a repeating pattern with some noise
    base = (np.arange(6000) * 5 % VOCAB).astype(np.uint16)
    noise = rng.integers(0, VOCAB, 6000).astype(np.uint16)
    return np.where(rng.random(6000) < 0.2, noise, base).astype(np.uint16)


class _Run:
    """The CUDA path of ``train``'s step, on the CPU: autocast bf16, compile, fused AdamW."""

    def __init__(self, cfg: TrainConfig, *, gpu: bool) -> None:
        self.cfg, self.gpu = cfg, gpu
        torch.manual_seed(cfg.seed)
        self.model = GPT(cfg.model)
        self.opt = torch.optim.AdamW(trainer._decay_groups(self.model, cfg.weight_decay), lr=cfg.lr,
                                     betas=(cfg.beta1, cfg.beta2), eps=cfg.adam_eps, fused=gpu)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, trainer.lr_lambda(cfg))
        self.step_model = torch.compile(self.model, backend="aot_eager") if gpu else self.model
        self.order = None
        self.step = 0

    def amp(self):
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.gpu)

    def train_steps(self, tokens: np.ndarray, until: int) -> list[float]:
        order = trainer.DataOrder(len(tokens), self.cfg.model.seq_len, self.cfg.seed)
        losses = []
        while self.step < until:
            x, y, n = trainer.step_batch(tokens, order, self.cfg, self.step)
            with self.amp():
                logits = self.step_model(x)
                ce, z = lm_loss(logits, y, self.cfg.z_loss)
                loss = (ce + z) / n
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            self.sched.step()
            losses.append(float(ce.detach()) / n)
            self.step += 1
        return losses

    def state(self) -> dict:
        return {"format": trainer.CHECKPOINT_FORMAT, "config": self.cfg.to_dict(), "step": self.step,
                "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(), "curve": [], "wall_s": 0.0}

    def load(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.step = state["step"]


def test_fused_adamw_runs_on_cpu_and_matches_the_loop_implementation():
    torch.manual_seed(0)
    w = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(3))]
    v = [torch.nn.Parameter(p.detach().clone()) for p in w]
    fused = torch.optim.AdamW(w, lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    plain = torch.optim.AdamW(v, lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1, fused=False)
    for _ in range(3):
        for ps in (w, v):
            for p in ps:
                p.grad = torch.ones_like(p) * p.detach().sum()
        fused.step()
        plain.step()
    for a, b in zip(w, v):
        torch.testing.assert_close(a, b)


def _spy_on_settings(monkeypatch, *, allow_compile: bool) -> dict:
    """Record the trainer's AdamW ``fused`` flags, ``torch.compile`` calls and logits dtypes."""
    seen = {"fused": [], "compiled": 0, "dtypes": set()}
    real_adamw, real_compile, real_loss = torch.optim.AdamW, torch.compile, trainer.lm_loss

    def adamw(*args, **kwargs):
        seen["fused"].append(kwargs.get("fused"))
        return real_adamw(*args, **kwargs)

    def compile_(*args, **kwargs):
        seen["compiled"] += 1
        if not allow_compile:
            raise AssertionError("torch.compile must not be called on the CPU path")
        return real_compile(*args, **kwargs)

    def loss(logits, *args, **kwargs):
        seen["dtypes"].add(logits.dtype)
        return real_loss(logits, *args, **kwargs)

    monkeypatch.setattr(torch.optim, "AdamW", adamw)
    monkeypatch.setattr(torch, "compile", compile_)
    monkeypatch.setattr(trainer, "lm_loss", loss)
    return seen


def test_train_selects_the_cuda_settings_only_on_cuda(monkeypatch):
    """On the CPU ``train`` uses a non-fused AdamW, no torch.compile and float32 logits."""
    seen = _spy_on_settings(monkeypatch, allow_compile=False)
    res = trainer.train(_cfg(8 * 16 * 2), _tokens(), _tokens()[:1000], device="cpu", progress=False)
    assert np.isfinite(res.final_loss)
    assert seen == {"fused": [False], "compiled": 0, "dtypes": {torch.float32}}


@pytest.fixture(scope="module")
def fp32_and_gpu_runs():
    tokens = _tokens()
    cfg = _cfg()
    ref = _Run(cfg, gpu=False)
    gpu = _Run(cfg, gpu=True)
    return tokens, cfg, ref.train_steps(tokens, cfg.total_steps), gpu, gpu.train_steps(tokens, cfg.total_steps)


def test_gpu_settings_give_finite_losses_close_to_float32(fp32_and_gpu_runs):
    tokens, cfg, fp32, gpu, bf16 = fp32_and_gpu_runs
    assert len(bf16) == cfg.total_steps == 6
    assert np.isfinite(bf16).all()
    # same init, same batches: bf16 autocast moves the loss by well under 1%
    np.testing.assert_allclose(bf16, fp32, rtol=1e-2)
    assert bf16[-1] < bf16[0]  # and it trains
    # the compiled model under autocast computes bf16 logits; the loss itself runs in float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = gpu.step_model(torch.zeros(1, 16, dtype=torch.long))
    assert logits.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in gpu.model.parameters())
    assert all(g["fused"] for g in gpu.opt.param_groups)


def test_gpu_settings_checkpoint_resumes_to_the_same_run(fp32_and_gpu_runs, tmp_path):
    tokens, cfg, _, _, full = fp32_and_gpu_runs
    first = _Run(cfg, gpu=True)
    head = first.train_steps(tokens, 3)
    path = tmp_path / "ckpt.pt"
    trainer.save_checkpoint(path, first.state())
    del first
    resumed = _Run(cfg, gpu=True)
    resumed.load(trainer.load_checkpoint(path, cfg))
    assert resumed.step == 3
    tail = resumed.train_steps(tokens, cfg.total_steps)
    # the bf16 CPU path is deterministic: the resumed run is the uninterrupted one
    np.testing.assert_allclose(head + tail, full, rtol=1e-6)


def test_train_runs_its_gpu_path_on_the_cpu(monkeypatch, tmp_path):
    """``train(..., gpu_settings=True)``: fused AdamW, compile, bf16 logits; finite, near fp32, resumable."""
    seen = _spy_on_settings(monkeypatch, allow_compile=True)
    cfg, tokens = _cfg(), _tokens()
    fp32 = trainer.train(cfg, tokens, tokens[:1000], device="cpu", progress=False)
    gpu = trainer.train(cfg, tokens, tokens[:1000], device="cpu", progress=False, gpu_settings=True)
    assert seen["fused"] == [False, True] and seen["compiled"] == 1
    assert seen["dtypes"] == {torch.float32, torch.bfloat16}
    assert np.isfinite(gpu.final_loss)
    np.testing.assert_allclose(gpu.final_loss, fp32.final_loss, rtol=2e-2)
    # stopped after three steps, resumed from the checkpoint: the same run
    path = tmp_path / "gpu.pt"

    class Stop(Exception):
        pass

    def stop_at_3(step):  # called after the step's checkpoint: a crash right after it
        if step == 3:
            raise Stop

    cfg_ck = TrainConfig(**{**cfg.__dict__, "checkpoint_every": 3})
    with pytest.raises(Stop):
        trainer.train(cfg_ck, tokens, tokens[:1000], device="cpu", progress=False, gpu_settings=True,
                      checkpoint_path=path, on_step=stop_at_3)
    assert path.is_file()
    resumed = trainer.train(cfg_ck, tokens, tokens[:1000], device="cpu", progress=False, gpu_settings=True,
                            checkpoint_path=path)
    assert resumed.resumed_from_step == 3
    whole = trainer.train(cfg_ck, tokens, tokens[:1000], device="cpu", progress=False, gpu_settings=True)
    np.testing.assert_allclose(resumed.final_loss, whole.final_loss, rtol=1e-5)


def test_gpu_run_dry_run_finishes_on_the_cpu(tmp_path):
    """``benchmarks/gpu_run.sh OUT --dry-run``: the GPU session's script end to end, tiny, on the CPU."""
    import json
    import subprocess
    import sys
    import time
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "gpu"
    t = time.perf_counter()
    proc = subprocess.run(["bash", str(repo / "benchmarks" / "gpu_run.sh"), str(out), "--dry-run"],
                          cwd=repo, capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "PYTHON": sys.executable})
    wall = time.perf_counter() - t
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert wall < 60, f"dry run took {wall:.0f}s"
    checks = json.loads((out / "checks.json").read_text())
    assert checks["ok"] and checks["resumed_from_step"] == 6 and checks["logit_dtypes"] == ["float32"]
    tp = json.loads((out / "throughput.json").read_text())
    assert tp["tokens_per_s"] > 0 and tp["N"] > 0
    selection = json.loads((out / "selection.json").read_text())
    assert all(c["epochs"] <= 4 for c in selection["candidates"] if c["chosen"])
    assert any(not c["chosen"] and "epochs" in (c["why_not"] or "") for c in selection["candidates"])
    import pandas as pd

    table = pd.read_csv(out / "testbed" / "runs.csv")
    design = pd.read_csv(out / "design.csv")
    assert len(table) >= 1 and set(table["run_id"]) <= set(design["run_id"])
    assert all((out / "testbed" / "runs" / f"{r}.json").exists() for r in table["run_id"])
    assert "done in" in (out / "log.txt").read_text()
