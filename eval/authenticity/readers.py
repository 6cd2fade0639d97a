"""Authenticity reading: can readers tell real elastograms from synthetic ones?

Per reader, per reader group and overall (all answers pooled), flat keys (issue 5 §3):

* ``accuracy``: fraction of images whose type was named correctly; ``p``: the exact two-sided
  binomial test against 0.5 (chance); ``ci``: its Clopper–Pearson interval.
* ``fraction_synthetic_judged_real`` (the reference paper's "authenticity score": 0.49 in
  Li et al. 2024 — a value near 0.5 means synthetic images pass for real as often as not) and
  ``fraction_real_judged_real``.
* ``d_prime = z(H) − z(F)`` (signal detection; Macmillan & Creelman 2005) with "synthetic" as
  the signal: H = synthetic judged synthetic, F = real judged synthetic, each with the
  log-linear correction ``(k + 0.5)/(n + 1)`` (Hautus 1995) so that rates of 0 or 1 stay finite.
  d′ = 0 means the reader cannot tell the two apart.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from elastogan.errors import UserError
from elastogan.eval.stats_io import AuthenticityAnswers


def _fraction_ci(k: int, n: int, level: float) -> list[float]:
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    return [float(ci.low), float(ci.high)]


def summarise(is_synthetic: np.ndarray, judged_synthetic: np.ndarray, who: str, level: float = 0.95) -> dict:
    """Authenticity statistics of one set of answers (a reader, a group, or everyone).

    Raises:
        UserError: no answers, or no real or no synthetic image among them (the fractions and
            d′ would be undefined).
    """
    s = np.asarray(is_synthetic, dtype=bool)
    j = np.asarray(judged_synthetic, dtype=bool)
    n = s.size
    n_syn, n_real = int(s.sum()), int((~s).sum())
    if n == 0:
        raise UserError(f"{who}: no answers")
    if n_syn == 0 or n_real == 0:
        raise UserError(
            f"{who}: saw {n_syn} synthetic and {n_real} real images; authenticity needs both kinds"
        )
    correct = int((s == j).sum())
    test = stats.binomtest(correct, n, 0.5)
    ci = test.proportion_ci(confidence_level=level, method="exact")
    hits, fas = int((s & j).sum()), int((~s & j).sum())
    h = (hits + 0.5) / (n_syn + 1)
    f = (fas + 0.5) / (n_real + 1)
    return {
        "n": n,
        "n_synthetic": n_syn,
        "n_real": n_real,
        "n_correct": correct,
        "accuracy": correct / n,
        "p": float(test.pvalue),
        "ci": [float(ci.low), float(ci.high)],
        "fraction_synthetic_judged_real": (n_syn - hits) / n_syn,
        "fraction_synthetic_judged_real_ci": _fraction_ci(n_syn - hits, n_syn, level),
        "fraction_real_judged_real": (n_real - fas) / n_real,
        "fraction_real_judged_real_ci": _fraction_ci(n_real - fas, n_real, level),
        "d_prime": float(stats.norm.ppf(h) - stats.norm.ppf(f)),
    }

def analyse(answers: AuthenticityAnswers, level: float = 0.95) -> dict:
    """Per reader, per group (when the answers carry one) and overall statistics."""
    out: dict = {"overall": summarise(answers.is_synthetic, answers.judged_synthetic, "all readers", level)}
    out["readers"] = {
        rd: summarise(answers.is_synthetic[answers.reader == rd], answers.judged_synthetic[answers.reader == rd],
                      f"reader {rd!r}", level)
        for rd in dict.fromkeys(answers.reader.tolist())
    }
    if answers.group is not None:
        out["groups"] = {
            g: summarise(answers.is_synthetic[answers.group == g], answers.judged_synthetic[answers.group == g],
                         f"group {g!r}", level)
            for g in dict.fromkeys(answers.group.tolist())
        }
    return out
