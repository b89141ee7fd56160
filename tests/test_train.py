"""Tests for scaling_lib.training.train: loss falls, exact budget, resume, checkpoints, DDP."""

import dataclasses
import os

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from scaling_lib.training.model import GPTConfig
from scaling_lib.training import train as train_module
from scaling_lib.training.train import (
    CheckpointError,
    DataOrder,
    TrainConfig,
    TrainingDiverged,
    load_checkpoint,
    lr_lambda,
    save_checkpoint,
    step_batch,
    train,
)

VOCAB = 32


def markov_tokens(n, seed=0, vocab=VOCAB):
    """A first-order Markov chain: each token has 2 likely successors (entropy ~0.7 nats)."""
    rng = np.random.default_rng(seed)
    succ = rng.integers(0, vocab, size=(vocab, 2))
    out = np.empty(n, dtype=np.uint16)
    out[0] = 0
    choice = rng.random(n) < 0.5
    noise = rng.random(n) < 0.05
    rand = rng.integers(0, vocab, size=n)
    for i in range(1, n):
        out[i] = rand[i] if noise[i] else succ[out[i - 1], int(choice[i])]
    return out


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (and leave the other core to parallel tests)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    return markov_tokens(40_000, seed=0), markov_tokens(4_000, seed=0)[::-1].copy()


def tiny_config(**kw):
    base = dict(
        model=GPTConfig(d_model=16, n_layers=1, n_heads=2, vocab_size=VOCAB, seq_len=16),
        tokens=16 * 8 * 30 + 37,  # 30 full steps plus a partial one
        batch_size=8,
        lr=1e-2,
        warmup_steps=3,
        eval_points=4,
        eval_seqs=8,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_loss_falls_on_markov_data(data):
    train_tokens, _ = data
    cfg = tiny_config(tokens=16 * 8 * 80, lr=2e-2)
    res = train(cfg, train_tokens, markov_tokens(4000, seed=0), progress=False)
    assert res.curve[0][2] < np.log(VOCAB)
    assert res.final_loss < 0.6 * np.log(VOCAB)
    assert res.final_loss < res.curve[0][2]
    assert res.tokens_seen == cfg.tokens and res.steps == 80


def test_budget_is_exact_and_data_order_pure(data):
    train_tokens, _ = data
    cfg = tiny_config()
    order = DataOrder(len(train_tokens), cfg.model.seq_len, cfg.seed)
    assert cfg.total_steps == 31
    n_valid = sum(int((step_batch(train_tokens, order, cfg, s)[1] != -100).sum()) for s in range(cfg.total_steps))
    assert n_valid == cfg.tokens
    x, y, n_global = step_batch(train_tokens, order, cfg, cfg.total_steps - 1)
    assert n_global == 37 and x.shape == (3, 16) and int((y != -100).sum()) == 37
    with pytest.raises(ValueError, match="past the token budget"):
        step_batch(train_tokens, order, cfg, cfg.total_steps)
    # pure function of (seed, step): a fresh DataOrder gives the same batch, another seed does not
    fresh = DataOrder(len(train_tokens), cfg.model.seq_len, cfg.seed)
    a, b = step_batch(train_tokens, order, cfg, 7)[0], step_batch(train_tokens, fresh, cfg, 7)[0]
    assert torch.equal(a, b)
    other = DataOrder(len(train_tokens), cfg.model.seq_len, seed=1)
    assert not torch.equal(a, step_batch(train_tokens, other, cfg, 7)[0])


def test_epoch_visits_every_window_once():
    order = DataOrder(1001, 10, seed=3)
    starts = order.starts(0, order.n_windows)
    assert sorted(starts.tolist()) == list(range(0, 1000, 10))
    second = order.starts(order.n_windows, order.n_windows)
    assert sorted(second.tolist()) == sorted(starts.tolist()) and not np.array_equal(second, starts)


def test_lr_schedule():
    cfg = tiny_config(tokens=16 * 8 * 20, warmup_steps=4, min_lr_ratio=0.1)
    f = lr_lambda(cfg)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(19) == pytest.approx(0.1)
    values = [f(s) for s in range(4, 20)]
    assert all(a >= b for a, b in zip(values, values[1:]))


class Crash(Exception):
    pass


def test_kill_and_resume_matches_uninterrupted(data, tmp_path):
    train_tokens, val_tokens = data
    cfg = tiny_config(tokens=16 * 8 * 15 + 37, checkpoint_every=4)
    full = train(cfg, train_tokens, val_tokens, progress=False)

    ckpt = tmp_path / "run.pt"

    def crash_at(step):
        if step == 10:  # after the checkpoint at step 8: steps 9-10 are lost and redone
            raise Crash

    with pytest.raises(Crash):
        train(cfg, train_tokens, val_tokens, checkpoint_path=ckpt, progress=False, on_step=crash_at)
    assert load_checkpoint(ckpt, cfg)["step"] == 8
    resumed = train(cfg, train_tokens, val_tokens, checkpoint_path=ckpt, progress=False)
    assert resumed.resumed_from_step == 8
    assert resumed.final_loss == pytest.approx(full.final_loss, rel=1e-6, abs=1e-7)
    for p, q in zip(full.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert [c[:2] for c in resumed.curve] == [c[:2] for c in full.curve]


def test_corrupt_checkpoint_gives_clear_error(data, tmp_path):
    train_tokens, val_tokens = data
    ckpt = tmp_path / "bad.pt"
    ckpt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="bad.pt is corrupt or unreadable"):
        train(tiny_config(), train_tokens, val_tokens, checkpoint_path=ckpt, progress=False)


def _assert_finite_checkpoint(path, cfg):
    state = load_checkpoint(path, cfg)
    for name, t in list(state["model"].items()):
        assert torch.isfinite(t).all(), name


def test_huge_learning_rate_diverges_naming_the_step(data, tmp_path):
    train_tokens, val_tokens = data
    cfg = tiny_config(lr=1e30, grad_clip=0.0, checkpoint_every=1)
    ckpt = tmp_path / "run.pt"
    with pytest.raises(TrainingDiverged, match=r"run r0 \(d_model=16, .*lr=1e\+30.*\) diverged at step \d+ of 31") as exc:
        train(cfg, train_tokens, val_tokens, checkpoint_path=ckpt, progress=False, desc="r0")
    assert 1 <= exc.value.step < 31
    if ckpt.exists():  # only finite states are ever saved
        _assert_finite_checkpoint(ckpt, cfg)
        assert load_checkpoint(ckpt, cfg)["step"] < exc.value.step


class PoisonedAdamW(torch.optim.AdamW):
    """AdamW that writes a NaN into the first weight after its ``poison_at``-th step."""

    poison_at = 8

    def step(self, closure=None):
        out = super().step(closure)
        self.n_steps = getattr(self, "n_steps", 0) + 1
        if self.n_steps == self.poison_at:
            with torch.no_grad():
                self.param_groups[0]["params"][0].view(-1)[0] = float("nan")
        return out


@pytest.mark.parametrize("checkpoint_every, eval_points, where, step", [
    (4, 1, "embed.weight is non-finite before the checkpoint save", 8),  # step 8 saves: refused
    (5, 2, "weight embed.weight is non-finite", 8),  # step 8 evaluates: the weights are checked
    (5, 1, "training loss is nan", 9),  # step 9's loss is the first to see the NaN
])
def test_injected_nan_stops_training_and_is_never_saved(data, tmp_path, monkeypatch, checkpoint_every,
                                                        eval_points, where, step):
    train_tokens, val_tokens = data
    cfg = tiny_config(tokens=16 * 8 * 15, checkpoint_every=checkpoint_every, eval_points=eval_points)
    monkeypatch.setattr(train_module.torch.optim, "AdamW", PoisonedAdamW)
    ckpt = tmp_path / "run.pt"
    with pytest.raises(TrainingDiverged, match=where) as exc:
        train(cfg, train_tokens, val_tokens, checkpoint_path=ckpt, progress=False)
    assert exc.value.step == step and f"at step {step} of 15" in str(exc.value)
    _assert_finite_checkpoint(ckpt, cfg)
    assert load_checkpoint(ckpt, cfg)["step"] == (4 if checkpoint_every == 4 else 5)


def test_non_finite_validation_loss_is_never_returned(data, monkeypatch):
    train_tokens, val_tokens = data
    monkeypatch.setattr(train_module, "val_loss", lambda *a, **k: float("nan"))
    with pytest.raises(TrainingDiverged, match=r"validation loss is nan"):
        train(tiny_config(eval_points=1), train_tokens, val_tokens, progress=False)


def test_flipped_bytes_in_a_checkpoint_are_detected(data, tmp_path):
    train_tokens, val_tokens = data
    cfg = tiny_config(checkpoint_every=4)
    ckpt = tmp_path / "run.pt"

    def crash_at(step):
        if step == 5:
            raise Crash

    with pytest.raises(Crash):
        train(cfg, train_tokens, val_tokens, checkpoint_path=ckpt, progress=False, on_step=crash_at)
    good = ckpt.read_bytes()
    assert load_checkpoint(ckpt, cfg)["step"] == 4
    for offset in (len(good) // 2, len(good) - 3):  # a weight byte, the zip directory
        bad = bytearray(good)
        bad[offset] ^= 0x10
        ckpt.write_bytes(bytes(bad))
        with pytest.raises(CheckpointError, match=r"run.pt is corrupt: its payload does not match its SHA-256"):
            load_checkpoint(ckpt, cfg)
        with pytest.raises(CheckpointError, match="run.pt is corrupt"):
            train(cfg, train_tokens, val_tokens, checkpoint_path=ckpt, progress=False)
    ckpt.write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(CheckpointError, match="does not match its SHA-256"):
        load_checkpoint(ckpt, cfg)


def test_checkpoint_without_checksum_is_refused(tmp_path):
    cfg = tiny_config()
    torch.save({"format": "scaling_lib.training.train/1", "config": cfg.to_dict(), "step": 1}, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match=r"old.pt has no checksum .*delete it to restart"):
        load_checkpoint(tmp_path / "old.pt", cfg)


def test_checkpoint_save_respects_umask_and_leaves_no_temp_file(tmp_path, monkeypatch):
    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "c.pt", {"step": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "c.pt").stat().st_mode & 0o777 == 0o644

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(train_module.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "c.pt", {"step": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]
    assert load_checkpoint(tmp_path / "c.pt", check_format=False)["step"] == 1


def test_checkpoint_of_other_config_is_refused(tmp_path):
    cfg = tiny_config()
    save_checkpoint(tmp_path / "c.pt", {"format": "scaling_lib.training.train/1", "config": cfg.to_dict(), "step": 1})
    assert load_checkpoint(tmp_path / "c.pt", cfg)["step"] == 1
    with pytest.raises(CheckpointError, match="different TrainConfig"):
        load_checkpoint(tmp_path / "c.pt", dataclasses.replace(cfg, lr=1e-3))
    save_checkpoint(tmp_path / "d.pt", {"something": 1})
    with pytest.raises(CheckpointError, match="is not a scaling_lib.training.train/1 checkpoint"):
        load_checkpoint(tmp_path / "d.pt")


def test_config_roundtrip_and_errors():
    cfg = tiny_config()
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="tokens must be a positive int"):
        tiny_config(tokens=0)
    with pytest.raises(ValueError, match="min_lr_ratio"):
        tiny_config(min_lr_ratio=2.0)


def test_token_ids_beyond_vocab_are_rejected(data):
    bad = np.full(1000, VOCAB, dtype=np.uint16)
    with pytest.raises(ValueError, match=f">= vocab_size {VOCAB}"):
        train(tiny_config(), bad, bad, progress=False)


def test_gradient_accumulation_matches_full_batch(data):
    train_tokens, val_tokens = data
    cfg = tiny_config(tokens=16 * 8 * 6 + 20)
    a = train(cfg, train_tokens, val_tokens, progress=False)
    b = train(dataclasses.replace(cfg, micro_batch_size=3), train_tokens, val_tokens, progress=False)
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def _ddp_worker(rank, world, init_file, out_dir, cfg_dict):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        cfg = TrainConfig.from_dict(cfg_dict)
        tokens = markov_tokens(40_000, seed=0)
        res = train(cfg, tokens, tokens[:4000], device="cpu", progress=False)
        flat = torch.cat([p.detach().flatten() for p in res.model.parameters()])
        torch.save({"params": flat, "train_loss": res.train_loss, "final": res.final_loss},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_ddp_gloo_two_processes_match_single_process(tmp_path):
    # 5 steps of 8 sequences, then a partial step of 3 sequences (one rank gets 1 row, one 2)
    cfg = tiny_config(tokens=16 * 8 * 5 + 16 * 2 + 5, eval_points=1)
    torch.set_num_threads(1)
    tokens = markov_tokens(40_000, seed=0)
    single = train(cfg, tokens, tokens[:4000], progress=False)
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path), cfg.to_dict()), nprocs=2, join=True)
    ref = torch.cat([p.detach().flatten() for p in single.model.parameters()])
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        torch.testing.assert_close(got["params"], ref, rtol=1e-4, atol=1e-5)
        assert got["train_loss"] == pytest.approx(single.train_loss, rel=1e-5)
        assert got["final"] == pytest.approx(single.final_loss, rel=1e-5)
