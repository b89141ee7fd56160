"""One prepared GPU session: check the CUDA path, measure throughput and MFU, train a small testbed.

Run through ``benchmarks/gpu_run.sh OUT [--dry-run] [--corpus-cache DIR]``;
the whole script keeps to a wall-clock budget (``--budget-s``, default 450 s,
inside the 8 minutes a GPU session allows).  Three phases, each written to
``OUT`` as it finishes:

1. **CUDA path** (``OUT/checks.json``): :func:`scaling_lib.training.train.train`
   on a tiny model and a synthetic corpus, watched by spies on
   ``torch.optim.AdamW``, ``torch.compile`` and the trainer's loss: the
   optimiser is fused, the model compiled, the logits bf16 (autocast), the
   losses finite; a run stopped by an exception at half its steps and resumed
   from its checkpoint ends at the loss of the uninterrupted run (within 2% on
   CUDA, where compiled bf16 kernels need not be bit-reproducible; to float
   rounding in the CPU dry run).
2. **Throughput** (``OUT/throughput.json``): training steps of the largest
   gpu-small shape (g6: d 512, 10 layers, 32 heads, context 256, batch 128)
   with the trainer's settings, tokens/s and MFU = ``6 N`` FLOPs per token over
   the device's dense bf16 peak (named: H200 and H100 989 TFLOP/s).
3. **Testbed** (``OUT/testbed/runs.csv``, ``OUT/testbed/runs/*.json``,
   ``OUT/design.csv``): a "gpu-check" design of gpu-small's shapes and
   hyperparameter rule, trained by :func:`scaling_lib.training.sweep.run_sweep`
   (no second trainer).  Runs are taken in priority order (the fit runs
   g1-g3 at M=20 first, then an over-trained g1 at M=80, g4 at M=10, then
   grid runs) as long as the estimated time (``6 N D`` over the FLOP rate
   measured in phase 2, discounted for the smaller shapes, plus a per-run
   compile and evaluation overhead) fits the budget left; no run exceeds 4
   epochs of the training split (24.4M tokens for ``train_en``: at most 97.6M
   tokens a run), and each multiplier is nudged so that ``D`` is a whole
   number of steps (no recompilation for a partial last batch).  Needs the
   corpus splits ``train_en`` and ``val_en`` (``--corpus-cache``); without them
   the phase is skipped with a message.

``--dry-run`` runs the same code on the CPU with tiny shapes, a synthetic
corpus and a budget of 30 s (the trainer's CPU path: float32, no compile, no
fused AdamW, which the checks then expect).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.bench_train import bf16_peak, make_step, our_loss, timed  # noqa: E402
from scaling_lib import testbeds  # noqa: E402
from scaling_lib.configs import GPTConfig, TrainConfig  # noqa: E402
from scaling_lib.testbeds import RunSpec, Shape  # noqa: E402
from scaling_lib.training import sweep  # noqa: E402
from scaling_lib.training import train as trainer  # noqa: E402
from scaling_lib.training.model import GPT  # noqa: E402

MAX_EPOCHS = 4.0
EXPECTED_TRAIN_TOKENS = 24_400_000  # train_en, for the message when the corpus is absent


class Clock:
    """Seconds left of the session's budget."""

    def __init__(self, budget_s: float) -> None:
        self.t0, self.budget = time.perf_counter(), budget_s

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        return self.budget - self.elapsed()


def log(msg: str) -> None:
    print(f"[gpu_run] {msg}", flush=True)


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, default=str) + "\n")


# ----------------------------------------------------------------------------- phase 1: the CUDA path


class _Interrupt(Exception):
    pass


def check_cuda_path(device: str, out: Path) -> dict:  # noqa: C901
    """Train a tiny model through ``train`` three times (whole; stopped at half; resumed), with spies."""
    on_cuda = device.startswith("cuda")
    vocab = 64
    cfg = TrainConfig(model=GPTConfig(d_model=64, n_layers=2, n_heads=4, vocab_size=vocab, seq_len=64),
                      tokens=16 * 64 * 12, batch_size=16, lr=3e-3, warmup_steps=2, eval_seqs=8, eval_points=2)
    rng = np.random.default_rng(0)
    base = (np.arange(40_000) * 7 % vocab).astype(np.uint16)
    toks = np.where(rng.random(40_000) < 0.2, rng.integers(0, vocab, 40_000), base).astype(np.uint16)
    val = toks[:4_000]

    seen = {"fused": [], "compiled": 0, "logit_dtypes": set(), "losses": []}
    real_adamw, real_compile, real_loss = torch.optim.AdamW, torch.compile, trainer.lm_loss

    def adamw(*a, **k):
        seen["fused"].append(bool(k.get("fused")))
        return real_adamw(*a, **k)

    def compile_(*a, **k):
        seen["compiled"] += 1
        return real_compile(*a, **k)

    def loss(logits, *a, **k):
        if logits.requires_grad:
            seen["logit_dtypes"].add(str(logits.dtype).removeprefix("torch."))
        ce, z = real_loss(logits, *a, **k)
        seen["losses"].append(float(ce.detach()))
        return ce, z

    torch.optim.AdamW, torch.compile, trainer.lm_loss = adamw, compile_, loss
    try:
        t = time.perf_counter()
        whole = trainer.train(cfg, toks, val, device=device, progress=False)
        t_whole = time.perf_counter() - t
        ckpt = Path(tempfile.mkdtemp(prefix="gpu_run_check_")) / "check.pt"
        half = cfg.total_steps // 2

        def stop(step: int) -> None:
            if step == half:
                raise _Interrupt

        try:
            trainer.train(dataclasses.replace(cfg, checkpoint_every=half), toks, val, checkpoint_path=ckpt,
                          device=device, progress=False, on_step=stop)
        except _Interrupt:
            pass
        resumed = trainer.train(dataclasses.replace(cfg, checkpoint_every=half), toks, val, checkpoint_path=ckpt,
                                device=device, progress=False)
    finally:
        torch.optim.AdamW, torch.compile, trainer.lm_loss = real_adamw, real_compile, real_loss
    tol = 2e-2 if on_cuda else 1e-5
    expect = {"fused": on_cuda, "compiled": on_cuda, "dtype": "bfloat16" if on_cuda else "float32"}
    result = {
        "device": whole.device,
        "fused_adamw": all(seen["fused"]) and bool(seen["fused"]),
        "compiled": seen["compiled"] == 3,
        "logit_dtypes": sorted(seen["logit_dtypes"]),
        "losses_finite": bool(np.isfinite(seen["losses"]).all()),
        "final_loss": whole.final_loss,
        "resumed_final_loss": resumed.final_loss,
        "resumed_from_step": resumed.resumed_from_step,
        "resume_rel_diff": abs(resumed.final_loss - whole.final_loss) / whole.final_loss,
        "resume_tolerance": tol,
        "first_run_wall_s": t_whole,
        "expected": expect,
    }
    result["ok"] = bool(
        result["fused_adamw"] == expect["fused"] and result["compiled"] == expect["compiled"]
        and result["logit_dtypes"] == [expect["dtype"]] and result["losses_finite"]
        and resumed.resumed_from_step == half and result["resume_rel_diff"] <= tol
    )
    write_json(out / "checks.json", result)
    log(f"CUDA path check ({whole.device}): fused AdamW {result['fused_adamw']}, compiled {result['compiled']}, "
        f"logits {result['logit_dtypes']}, finite {result['losses_finite']}, resume from step "
        f"{resumed.resumed_from_step}: loss {resumed.final_loss:.4f} vs {whole.final_loss:.4f} "
        f"(rel {result['resume_rel_diff']:.1e} <= {tol:g}) -> {'OK' if result['ok'] else 'FAILED'}")
    return result


# ----------------------------------------------------------------------------- phase 2: throughput


def measure_throughput(shape: Shape, seq_len: int, batch: int, vocab: int, device: str, steps: int,
                       out: Path) -> dict:
    """Tokens/s and MFU of ``shape`` with the trainer's settings (bf16 autocast, compile, fused AdamW on CUDA)."""
    on_cuda = device.startswith("cuda")
    cfg = GPTConfig(d_model=shape.d_model, n_layers=shape.n_layers, n_heads=shape.n_heads,
                    vocab_size=vocab, seq_len=seq_len)
    torch.manual_seed(0)
    model = GPT(cfg)
    n = model.num_params()
    data = torch.randint(0, vocab, (batch, seq_len + 1))
    step = make_step(model, our_loss, data, device, compile_model=on_cuda)
    t = time.perf_counter()
    for _ in range(3):  # includes the compilation
        step()
    warm_s = time.perf_counter() - t
    rates = [steps * batch * seq_len / timed(step, steps, device)[0] for _ in range(3)]  # wall clock
    rate = float(np.median(rates))
    name, peak = bf16_peak(torch.cuda.get_device_name()) if on_cuda else ("CPU (no bf16 peak)", float("nan"))
    result = {"shape": dataclasses.asdict(shape), "N": n, "seq_len": seq_len, "batch": batch,
              "tokens_per_s": rate, "rounds": rates, "flops_per_token_6N": 6.0 * n,
              "achieved_flops": 6.0 * n * rate, "peak_name": name, "peak_bf16_dense_flops": peak,
              "mfu": 6.0 * n * rate / peak if on_cuda else None, "warmup_and_compile_s": warm_s,
              "device": torch.cuda.get_device_name() if on_cuda else "cpu"}
    write_json(out / "throughput.json", result)
    mfu = f"MFU {result['mfu']:.1%} of {name} {peak / 1e12:.0f} TFLOP/s dense bf16" if on_cuda else "MFU n/a on CPU"
    log(f"throughput {shape.name} (N={n:,}, batch {batch}x{seq_len}): {rate:,.0f} tokens/s, "
        f"{6 * n * rate / 1e12:.2f} TFLOP/s (6N), {mfu}; warmup+compile {warm_s:.0f}s")
    del model, step
    if on_cuda:
        torch.cuda.empty_cache()
    return result


# ----------------------------------------------------------------------------- phase 3: a small testbed


def whole_steps(tb: testbeds.Testbed, run: RunSpec) -> RunSpec:
    """``run`` with its multiplier nudged so that ``D`` is a whole number of steps."""
    n = tb.n_params(run.shape)
    per_step = tb.batch_size * tb.seq_len
    steps = max(1, round(run.multiplier * n / per_step))
    m = steps * per_step / n
    for _ in range(8):  # round(m * n) may miss by one token in floating point
        if tb.tokens(dataclasses.replace(run, multiplier=m)) == steps * per_step:
            break
        m = float(np.nextafter(m, np.inf if tb.tokens(dataclasses.replace(run, multiplier=m)) < steps * per_step
                               else -np.inf))
    return dataclasses.replace(run, multiplier=m)


def select_runs(tb: testbeds.Testbed, candidates: list[RunSpec], n_train: int, seconds: float,
                flops_per_s: float, overhead_s: float) -> tuple[list[RunSpec], list[dict]]:
    """Runs in priority order that fit ``seconds`` (estimated) and ``MAX_EPOCHS`` epochs of the data."""
    chosen, notes, spent = [], [], 0.0
    for cand in candidates:
        run = whole_steps(tb, cand)
        d = tb.tokens(run)
        epochs = d / n_train
        cost = tb.flops(run) / flops_per_s + overhead_s
        why = None
        if epochs > MAX_EPOCHS:
            why = f"{epochs:.1f} epochs > {MAX_EPOCHS:g}"
        elif spent + cost > seconds:
            why = f"estimated {cost:.0f}s, {seconds - spent:.0f}s left"
        else:
            chosen.append(run)
            spent += cost
        notes.append({"run_id": run.run_id, "D": d, "epochs": epochs, "estimated_s": cost,
                      "chosen": why is None, "why_not": why})
    return chosen, notes


def gpu_check_design(dry_run: bool) -> tuple[testbeds.Testbed, list[RunSpec]]:
    """The base testbed (gpu-small's rule, or a tiny CPU one) and the candidate runs in priority order."""
    if dry_run:
        base = testbeds.Testbed(
            name="gpu-check-dry", description="tiny CPU stand-in for the gpu-check design",
            shapes=(Shape("t1", 16, 1, 2), Shape("t2", 24, 2, 2), Shape("t3", 32, 2, 2)), runs=(),
            vocab_size=64, seq_len=32, batch_size=8, eval_points=2, eval_seqs=8, checkpoint_every_s=5.0)
        cands = [RunSpec("t1", 20, role="fit"), RunSpec("t2", 20, role="fit"), RunSpec("t1", 80, role="fit"),
                 RunSpec("t3", 20), RunSpec("t3", 10_000)]
        return base, cands
    gs = testbeds.gpu_small()
    base = dataclasses.replace(gs, name="gpu-check", runs=(), checkpoint_every_s=60.0,
                               description="runs of gpu-small's shapes and rule sized to one short GPU session")
    cands = [RunSpec("g1", 20, role="fit"), RunSpec("g2", 20, role="fit"), RunSpec("g3", 20, role="fit"),
             RunSpec("g1", 80, role="fit"), RunSpec("g4", 10, role="target"),
             RunSpec("g1", 5), RunSpec("g1", 10), RunSpec("g2", 10), RunSpec("g2", 40), RunSpec("g3", 10),
             RunSpec("g1", 40), RunSpec("g4", 5), RunSpec("g5", 5)]
    return base, cands


def synthetic_corpus(root: Path, vocab: int) -> Path:
    """A corpus cache with ``train_en`` and ``val_en`` token splits (dry run only)."""
    (root / "tokens").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train_en", 400_000), ("val_en", 8_000)):
        base = (np.arange(n) * 7 % vocab).astype(np.uint16)
        arr = np.where(rng.random(n) < 0.2, rng.integers(0, vocab, n), base).astype(np.uint16)
        np.save(root / "tokens" / f"{split}.npy", arr)
    return root


def train_testbed(out: Path, work: Path, corpus: Path | None, device: str, clock: Clock, flops_per_s: float,
                  dry_run: bool, margin_s: float) -> dict:
    base, cands = gpu_check_design(dry_run)
    paths = sweep.SweepPaths(out_dir=out / "testbed", work_dir=work, corpus_cache=corpus)
    probe = dataclasses.replace(base, runs=(cands[0],))
    try:
        sweep.check_inputs(probe, paths, evaluate=False)
    except sweep.SweepError as exc:
        log(f"testbed skipped: {exc} (pass --corpus-cache with tokens/train_en.npy and tokens/val_en.npy; "
            f"train_en holds {EXPECTED_TRAIN_TOKENS / 1e6:.1f}M tokens)")
        return {"skipped": str(exc)}
    n_train = len(sweep._tokens(base.train_split, str(corpus) if corpus else None))
    # small shapes reach a smaller share of the large shape's FLOP rate: count them at a third of it
    rate = flops_per_s / 3.0
    overhead = 2.0 if dry_run else 45.0  # compilation, evaluation and writing per run
    seconds = clock.left() - margin_s
    runs, notes = select_runs(base, cands, n_train, seconds, rate, overhead)
    for note in notes:
        log(f"  {'take' if note['chosen'] else 'skip'} {note['run_id']}: D={note['D']:,} "
            f"({note['epochs']:.2f} epochs), ~{note['estimated_s']:.0f}s" + (f" ({note['why_not']})" if note["why_not"] else ""))
    write_json(out / "selection.json", {"n_train_tokens": n_train, "seconds_for_runs": seconds,
                                        "assumed_flops_per_s": rate, "overhead_s_per_run": overhead,
                                        "candidates": notes})
    if not runs:
        log("testbed: no run fits the time left")
        return {"runs": []}
    tb = dataclasses.replace(base, runs=tuple(runs))
    tb.table().to_csv(out / "design.csv", index=False)
    log(f"testbed {tb.name}: {len(runs)} runs, {sum(tb.tokens(r) for r in runs):,} tokens, "
        f"{clock.left():.0f}s of the budget left")
    summary = sweep.run_sweep(tb, paths, workers=1, threads=torch.get_num_threads(), evaluate=False, device=device,
                              log=log)
    log(f"testbed: {summary}")
    return {"runs": [r.run_id for r in runs], "summary": str(summary), "failed": sorted(summary.failed)}


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", help="folder for the run table, records and reports")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU (synthetic corpus)")
    parser.add_argument("--corpus-cache", default=None, help="corpus cache with tokens/train_en.npy, val_en.npy")
    parser.add_argument("--budget-s", type=float, default=None, help="wall-clock budget (default 450, dry run 30)")
    parser.add_argument("--work", default=None, help="checkpoints and final weights (default: a temporary folder)")
    args = parser.parse_args(argv)
    clock = Clock(args.budget_s or (30.0 if args.dry_run else 450.0))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="gpu_run_work_"))
    if args.dry_run:
        device = "cpu"
        torch.set_num_threads(1)
    else:
        if not torch.cuda.is_available():
            log("no CUDA device: run with --dry-run on a CPU")
            return 2
        device = "cuda"
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    log(f"device {torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}, torch {torch.__version__}, "
        f"budget {clock.budget:.0f}s, out {out}")
    report = {"device": device, "dry_run": args.dry_run, "budget_s": clock.budget}

    report["checks"] = check_cuda_path(device, out)
    log(f"phase 1 done at {clock.elapsed():.0f}s")

    if args.dry_run:
        shape, seq_len, batch, vocab, steps = Shape("t3", 32, 2, 2), 32, 8, 64, 3
    else:
        gs = testbeds.gpu_small()
        shape, seq_len, batch, vocab, steps = gs.shapes[-1], gs.seq_len, gs.batch_size, gs.vocab_size, 20
    tp = measure_throughput(shape, seq_len, batch, vocab, device, steps, out)
    report["throughput"] = tp
    log(f"phase 2 done at {clock.elapsed():.0f}s")

    corpus = Path(args.corpus_cache) if args.corpus_cache else None
    if args.dry_run and corpus is None:
        corpus = synthetic_corpus(work / "corpus", 64)
    report["testbed"] = train_testbed(out, work, corpus, device, clock, tp["achieved_flops"], args.dry_run,
                                      margin_s=5.0 if args.dry_run else 30.0)
    report["wall_s"] = clock.elapsed()
    write_json(out / "report.json", report)
    ok = report["checks"]["ok"] and not report["testbed"].get("failed")
    log(f"done in {clock.elapsed():.0f}s: {'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
