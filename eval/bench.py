"""``elastogan bench stats``: speed of the fast DeLong and of the MRMC analysis, with peers.

Each figure is reported against a peer measured in the same run (absolute times on shared
machines are noisy):

* DeLong on N cases (two paired score vectors) by the midrank algorithm (Sun & Xu 2014)
  against the direct O(m·n) placements (every positive against every negative) — on a
  subsample where the direct method is affordable, with its time at N extrapolated as n².
* Obuchowski–Rockette with 10 readers × 1000 cases × 2 modalities, jackknife covariance from
  placements (O(1) per left-out case) against recomputing every leave-one-out AUC from scratch.
  Both give the same covariance; the bench reports the largest difference.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable


def register_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stats",
        help="fast DeLong on 10^5 cases and MRMC on 10 readers x 1000 cases, against naive peers",
        description="Times the reader-study statistics against naive peers in the same run.",
    )
    p.add_argument("--cases", type=int, default=100_000, help="cases for the DeLong bench (default 100000)")
    p.add_argument("--subsample", type=int, default=4000, help="cases where the O(n^2) peer runs (default 4000)")
    p.add_argument("--readers", type=int, default=10, help="MRMC readers (default 10)")
    p.add_argument("--mrmc-cases", type=int, default=1000, help="MRMC cases (default 1000)")
    p.add_argument("--repeats", type=int, default=3, help="best of this many runs (default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", metavar="FILE", help="also write the figures as JSON")
    p.set_defaults(func=_run)


def _best(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t0)
    return best, value


def _naive_delong(scores, truth):
    """DeLong covariance from the full m×n kernel: the textbook O(m·n) peer."""
    import numpy as np

    pos = truth.astype(bool)
    v10, v01 = [], []
    for s in scores:
        x, y = s[pos][:, None], s[~pos][None, :]
        psi = (x > y) + 0.5 * (x == y)
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    v10, v01 = np.array(v10), np.array(v01)
    return v10.mean(axis=1), np.cov(v10) / pos.sum() + np.cov(v01) / (~pos).sum()


def _naive_jackknife(ratings, truth):
    """Jackknife covariance by recomputing each leave-one-out AUC with midranks."""
    import numpy as np
    from scipy import stats

    n = truth.size

    def aucs(s, t):
        pos = t.astype(bool)
        m, k = pos.sum(), (~pos).sum()
        ranks = stats.rankdata(s, axis=1)
        return (ranks[:, pos].sum(axis=1) - m * (m + 1) / 2) / (m * k)

    keep = np.ones(n, dtype=bool)
    loo = np.empty((ratings.shape[0], n))
    for i in range(n):
        keep[i] = False
        loo[:, i] = aucs(ratings[:, keep], truth[keep])
        keep[i] = True
    dev = loo - loo.mean(axis=1, keepdims=True)
    return (n - 1) / n * (dev @ dev.T)


def _run(args: argparse.Namespace) -> int:
    import numpy as np

    from elastogan.errors import UserError
    from elastogan.eval.reader_stats import mrmc, roc

    if args.subsample > args.cases or args.subsample < 100:
        raise UserError(f"--subsample must be between 100 and --cases, got {args.subsample}")
    if args.readers < 2 or args.mrmc_cases < 20 or args.repeats < 1:
        raise UserError("--readers ≥ 2, --mrmc-cases ≥ 20 and --repeats ≥ 1 are needed")
    rng = np.random.default_rng(args.seed)

    # DeLong: two correlated paired scores, 30 % positive, ties from rounding.
    n = args.cases
    truth = (rng.random(n) < 0.3).astype(np.int64)
    latent = rng.normal(size=n) + 1.2 * truth
    scores = np.round(np.stack([latent + rng.normal(size=n), latent + rng.normal(size=n)]), 2)
    t_fast, d = _best(lambda: roc.delong(scores, truth), args.repeats)
    sub = slice(0, args.subsample)
    t_fast_sub, d_sub = _best(lambda: roc.delong(scores[:, sub], truth[sub]), args.repeats)
    t_naive_sub, (auc_n, cov_n) = _best(lambda: _naive_delong(scores[:, sub], truth[sub]), args.repeats)
    if not (np.allclose(auc_n, d_sub.auc) and np.allclose(cov_n, d_sub.cov)):
        raise RuntimeError("fast and naive DeLong disagree")
    t_naive_extrapolated = t_naive_sub * (n / args.subsample) ** 2

    # MRMC: readers x cases x 2 modalities, paired.
    r, c = args.readers, args.mrmc_cases
    mt = (rng.random(c) < 0.4).astype(np.int64)
    base = rng.normal(size=c) + 1.0 * mt
    ratings = np.empty((2, r, c))
    for i in range(2):
        for j in range(r):
            ratings[i, j] = np.clip(np.round(base + 0.3 * i * mt + rng.normal(scale=0.8, size=c) + 3), 1, 5)
    study = mrmc.ReaderStudy(("A", "B"), tuple(f"r{j}" for j in range(r)), np.arange(c).astype(object), mt,
                             ratings, "paired")
    t_mrmc, res = _best(lambda: mrmc.analyse(study, "jackknife"), args.repeats)
    t_mrmc_delong, _ = _best(lambda: mrmc.analyse(study, "delong"), args.repeats)
    _, cov_fast = mrmc.auc_and_covariance(study, "jackknife")
    t_naive_jk, cov_naive = _best(lambda: _naive_jackknife(ratings.reshape(2 * r, c), mt), 1)
    cov_err = float(np.abs(cov_fast - cov_naive).max())

    figures = {
        "delong": {"cases": n, "fast_s": t_fast, "subsample": args.subsample, "fast_subsample_s": t_fast_sub,
                   "naive_subsample_s": t_naive_sub, "speedup_at_subsample": t_naive_sub / t_fast_sub,
                   "naive_extrapolated_s": t_naive_extrapolated, "speedup_extrapolated": t_naive_extrapolated / t_fast},
        "mrmc": {"readers": r, "cases": c, "modalities": 2, "jackknife_s": t_mrmc, "delong_s": t_mrmc_delong,
                 "naive_jackknife_s": t_naive_jk, "speedup": t_naive_jk / t_mrmc, "max_cov_difference": cov_err,
                 "p_random_readers": res["random_readers_random_cases"]["p"]},
    }
    print(f"DeLong, {n} cases x 2 scores: fast {t_fast * 1e3:.1f} ms")
    print(f"  at {args.subsample} cases: fast {t_fast_sub * 1e3:.2f} ms, naive O(mn) {t_naive_sub * 1e3:.1f} ms "
          f"-> {t_naive_sub / t_fast_sub:.0f}x; naive at {n} extrapolated {t_naive_extrapolated:.1f} s "
          f"-> {t_naive_extrapolated / t_fast:.0f}x")
    print(f"MRMC OR, {r} readers x {c} cases x 2 modalities: jackknife {t_mrmc * 1e3:.1f} ms, "
          f"DeLong covariance {t_mrmc_delong * 1e3:.1f} ms; naive leave-one-out jackknife {t_naive_jk * 1e3:.0f} ms "
          f"-> {t_naive_jk / t_mrmc:.0f}x (max covariance difference {cov_err:.1e})")
    if args.out:
        from elastogan.atomic import atomic_write_text
        from elastogan.eval.stats_format import to_json

        atomic_write_text(args.out, to_json(figures))
        print(f"wrote {args.out}")
    return 0
