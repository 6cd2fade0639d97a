"""Authenticity reading: can readers tell real elastograms from synthetic ones?

Per reader, per reader group and overall (all answers pooled), flat keys (issue 5 §3):

* ``accuracy``: fraction of images whose type was named correctly; ``p``: the exact two-sided
  binomial test against 0.5 (chance); ``ci``: its Clopper–Pearson interval.
* ``fraction_synthetic_judged_real`` (the reference paper's "authenticity score": 0.49 in
  Li et al. 2024 — a value near 0.5 means synthetic images pass for real as often as not) and
  ``fraction_real_judged_real``.
* ``d_prime = z(H) − z(F)`` (signal detection; Macmillan & Creelman 2005) with "synthetic" as
  the signal: H = fraction of synthetic images judged synthetic, F = fraction of real images
  judged synthetic, as published visual Turing tests report it. Only where H or F is 0 or 1
  (z infinite) both rates take the log-linear correction ``(k + 0.5)/(n + 1)`` (Hautus 1995);
  ``d_prime_method`` says which was used. d′ = 0 means the reader cannot tell the two apart.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from elastogan.errors import UserError
from elastogan.eval.reader_stats import repeats
from elastogan.eval.reader_stats.stats_io import AuthenticityAnswers, first_readings


def _fraction_ci(k: int, n: int, level: float) -> list[float]:
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    return [float(ci.low), float(ci.high)]


D_PRIME_PLAIN = "z(H) - z(F)"
D_PRIME_LOG_LINEAR = "log-linear corrected: (k + 0.5)/(n + 1), as H or F is 0 or 1 (Hautus 1995)"


def d_prime(hits: int, n_signal: int, false_alarms: int, n_noise: int) -> tuple[float, str]:
    """Sensitivity ``d′ = z(H) − z(F)``, and how it was computed.

    ``H = hits/n_signal`` and ``F = false_alarms/n_noise`` when both lie strictly between 0 and
    1; otherwise both rates take the log-linear correction ``(k + 0.5)/(n + 1)`` (Hautus 1995).

    Example:
        >>> d, how = d_prime(8, 10, 2, 10)  # H = 0.8, F = 0.2
        >>> round(d, 4), how
        (1.6832, 'z(H) - z(F)')
    """
    if min(n_signal, n_noise) < 1 or not (0 <= hits <= n_signal and 0 <= false_alarms <= n_noise):
        raise ValueError(f"expected 0 ≤ hits ≤ n_signal and 0 ≤ false_alarms ≤ n_noise with both n ≥ 1, "
                         f"got {hits}/{n_signal} and {false_alarms}/{n_noise}")
    h, f = hits / n_signal, false_alarms / n_noise
    if 0 < h < 1 and 0 < f < 1:
        return float(stats.norm.ppf(h) - stats.norm.ppf(f)), D_PRIME_PLAIN
    h, f = (hits + 0.5) / (n_signal + 1), (false_alarms + 0.5) / (n_noise + 1)
    return float(stats.norm.ppf(h) - stats.norm.ppf(f)), D_PRIME_LOG_LINEAR


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
    d, method = d_prime(hits, n_syn, fas, n_real)
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
        "hit_rate": hits / n_syn,
        "false_alarm_rate": fas / n_real,
        "d_prime": d,
        "d_prime_method": method,
    }


def analyse(answers: AuthenticityAnswers, level: float = 0.95) -> dict:
    """Per reader, per group (when the answers carry one) and overall statistics of the first
    readings; with repeated readings ``intra_reader`` (Cohen's κ of first against repeat), with
    reading times ``reading_time`` (:mod:`~elastogan.eval.reader_stats.repeats`)."""
    first = first_readings(answers)
    out: dict = {"overall": summarise(first.is_synthetic, first.judged_synthetic, "all readers", level)}
    out["readers"] = {
        rd: summarise(first.is_synthetic[first.reader == rd], first.judged_synthetic[first.reader == rd],
                      f"reader {rd!r}", level)
        for rd in dict.fromkeys(first.reader.tolist())
    }
    if first.group is not None:
        out["groups"] = {
            g: summarise(first.is_synthetic[first.group == g], first.judged_synthetic[first.group == g],
                         f"group {g!r}", level)
            for g in dict.fromkeys(first.group.tolist())
        }
    if answers.repeat is not None and answers.repeat.any():
        rd, a1, a2 = repeats.pair_repeats(answers.reader, [answers.case], answers.judged_synthetic, answers.repeat)
        out["intra_reader"] = repeats.intra_reader_kappa(rd, a1, a2, ["judged real", "judged synthetic"],
                                                         ordinal=False, level=level)
    if answers.reading_time_s is not None:
        by = {"reader": answers.reader, "image": np.where(answers.is_synthetic == 1, "synthetic", "real")}
        if answers.group is not None:
            by["group"] = answers.group
        if answers.repeat is not None:
            by["reading"] = np.where(answers.repeat, "repeat", "first")
        by.update(answers.extra or {})
        out["reading_time"] = repeats.reading_times(answers.reading_time_s, by)
    return out
