"""Tests for scaling_lib.laws_beyond: formulas, recovery from seeded data, published values, the schedule."""

import math

import numpy as np
import pandas as pd
import pytest

from scaling_lib import fit
from scaling_lib import laws_beyond as lb

RNG_SEED = 0


def test_neg_log_accuracy_round_trip_and_bad_input():
    err = np.array([0.0, 0.3, 0.9])
    np.testing.assert_allclose(lb.error_from_neg_log_accuracy(lb.neg_log_accuracy(err)), err, atol=1e-15)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        lb.neg_log_accuracy([1.0])


def test_downstream_compute_recovery():
    rng = np.random.default_rng(RNG_SEED)
    C = np.logspace(16, 21, 8)
    true = {"A": 4.0, "alpha": 0.04}
    q = lb.DOWNSTREAM_COMPUTE(true, C=C) * np.exp(0.002 * rng.standard_normal(C.size))
    res = fit.fit(lb.DOWNSTREAM_COMPUTE, pd.DataFrame({"flops": C, "q": q}), target="q", inputs={"C": "flops"})
    np.testing.assert_allclose([res.params["A"], res.params["alpha"]], [4.0, 0.04], rtol=0.05)


def test_downstream_nd_recovery():
    rng = np.random.default_rng(RNG_SEED)
    N, M = (a.ravel() for a in np.meshgrid(np.logspace(7, 9.5, 5), [10.0, 20.0, 80.0, 320.0]))
    D = N * M
    true = {"A": 30.0, "alpha": 0.25, "B": 8.0, "beta": 0.1}
    q = lb.DOWNSTREAM_ND(true, N=N, D=D) * np.exp(1e-4 * rng.standard_normal(N.size))
    res = fit.fit(lb.DOWNSTREAM_ND, pd.DataFrame({"N": N, "D": D, "q": q}), target="q")
    np.testing.assert_allclose([res.params[k] for k in true], list(true.values()), rtol=0.05)


def test_kaplan_published_reference_value():
    # Kaplan et al. 2020 eq. (1.5) with their Table 2 values, at N = 1e9, D = 1e10
    value = lb.KAPLAN(lb.KAPLAN_PUBLISHED, N=1e9, D=1e10)[0]
    assert value == pytest.approx(2.4838, abs=1e-4)
    # the limits of eq. (1.5) are their eqs. (1.1) and (1.2): L(N) = (N_c/N)^alpha_N, L(D) = (D_c/D)^alpha_D
    p = lb.KAPLAN_PUBLISHED
    assert lb.KAPLAN(p, N=1e9, D=1e30)[0] == pytest.approx((p["N_c"] / 1e9) ** p["alpha_N"], rel=1e-9)
    assert lb.KAPLAN(p, N=1e30, D=1e10)[0] == pytest.approx((p["D_c"] / 1e10) ** p["alpha_D"], rel=1e-6)


def test_kaplan_recovery_from_data_driven_starts():
    rng = np.random.default_rng(RNG_SEED)
    N, D = (a.ravel() for a in np.meshgrid(np.logspace(6, 9, 5), np.logspace(8, 11, 5)))
    true = {"N_c": 2e12, "D_c": 3e11, "alpha_N": 0.08, "alpha_D": 0.11}
    L = lb.KAPLAN(true, N=N, D=D) * np.exp(1e-4 * rng.standard_normal(N.size))
    starts = lb.kaplan_starts(N, D, L)
    assert starts and all(set(s) == set(lb.KAPLAN.param_names) for s in starts)
    res = fit.fit(lb.KAPLAN, pd.DataFrame({"N": N, "D": D, "loss": L}), target="loss", starts=starts)
    assert res.success
    np.testing.assert_allclose([res.params["alpha_N"], res.params["alpha_D"]], [0.08, 0.11], rtol=0.05)
    np.testing.assert_allclose(math.log(res.params["N_c"]), math.log(2e12), rtol=0.02)
    np.testing.assert_allclose(math.log(res.params["D_c"]), math.log(3e11), rtol=0.02)


def test_schedule_areas_by_hand():
    s1, s2 = lb.schedule_areas([1.0, 1.0, 0.5, 0.5], [1, 2, 3, 4], decay=0.5)
    # m = [0, 0, 0.5, 0.25]
    np.testing.assert_allclose(s1, [1.0, 2.0, 2.5, 3.0])
    np.testing.assert_allclose(s2, [0.0, 0.0, 0.5, 0.75])
    # the warmup's rise gives no negative annealing area
    s1, s2 = lb.schedule_areas([0.5, 1.0, 0.5], [3], decay=0.0, warmup_steps=1)
    np.testing.assert_allclose(s2, [0.5])
    with pytest.raises(ValueError, match="decay"):
        lb.schedule_areas([1.0], [1], decay=1.0)
    with pytest.raises(ValueError, match="steps must lie"):
        lb.schedule_areas([1.0, 0.5], [3])


def test_lr_annealing_recovery():
    rng = np.random.default_rng(RNG_SEED)
    cfg = {"tokens": 4096 * 2000, "batch_size": 32, "lr": 0.01, "warmup_steps": 200, "min_lr_ratio": 0.1,
           "model": {"seq_len": 128}}
    steps = np.arange(300, 2001, 100)
    # two schedules (full length and half length) separate the annealing term from the forward term
    frames = []
    true = {"L0": 2.5, "A": 1.2, "alpha": 0.5, "C": 0.2}
    for tokens in (cfg["tokens"], cfg["tokens"] // 2):
        lrs, warm = lb.config_schedule(cfg, tokens=tokens)
        st = steps[steps <= len(lrs)]
        s1, s2 = lb.schedule_areas(lrs, st, decay=0.99, warmup_steps=warm)
        y = lb.LR_ANNEALING(true, S1=s1, S2=s2) + 1e-4 * rng.standard_normal(st.size)
        frames.append(pd.DataFrame({"S1": s1, "S2": s2, "loss": y}))
    res = fit.fit(lb.LR_ANNEALING, pd.concat(frames, ignore_index=True), target="loss")
    np.testing.assert_allclose([res.params[k] for k in true], list(true.values()), rtol=0.05)


def test_config_schedule_shorter_run_keeps_warmup():
    cfg = {"tokens": 4096 * 100, "batch_size": 32, "lr": 2e-3, "warmup_steps": 30, "min_lr_ratio": 0.1,
           "model": {"seq_len": 128}}
    lrs, warm = lb.config_schedule(cfg, tokens=4096 * 40)
    assert (len(lrs), warm) == (40, 20)  # at most half the steps
    assert lrs.max() == pytest.approx(2e-3) and lrs[-1] == pytest.approx(2e-4)


@pytest.mark.parametrize("tokens,warmup", [(4096 * 10, 2), (4096 * 300 + 5, 31), (4096 * 7, 0), (4096 * 50, 49)])
def test_lr_multipliers_match_lr_lambda(tokens, warmup):
    from scaling_lib.configs import GPTConfig, TrainConfig
    from scaling_lib.training.train import lr_lambda

    cfg = TrainConfig(model=GPTConfig(d_model=32, n_layers=1, n_heads=2), tokens=tokens, batch_size=32,
                      lr=1e-3, warmup_steps=warmup)
    f = lr_lambda(cfg)
    expected = np.array([f(k) for k in range(cfg.total_steps)])
    np.testing.assert_allclose(lb.lr_multipliers(cfg.total_steps, warmup, cfg.min_lr_ratio), expected,
                               rtol=1e-12, atol=1e-15)
    lrs, warm = lb.config_schedule(cfg.to_dict())
    np.testing.assert_allclose(lrs, 1e-3 * expected, rtol=1e-12)
    assert warm == warmup


def test_laws_latex_and_bounds():
    for law in lb.BEYOND_LAWS:
        assert law.latex() and law.latex({n: 1.5 for n in law.param_names})
        assert len(law.bounds) == law.n_params
