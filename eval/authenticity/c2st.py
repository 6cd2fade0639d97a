"""Classifier two-sample tests (C2ST; Lopez-Paz & Oquab 2017, ICLR).

Label the maps of set A 0 and those of set B 1 (real and synthetic), train an *observer* (a
classifier) on part of them and let it label the rest. If the two sets come from one
distribution, no observer does better than chance: the held-out accuracy is Binomial(n, ½).
So the test is the exact binomial test of the held-out accuracy against 0.5, with its
Clopper–Pearson interval; the AUC of the held-out scores (Mann–Whitney) ranks without a
threshold.

Cross-fitting by group: every map is held out exactly once, and all maps of one group (one
patient: a case's real and synthetic map, or several views of one lesion) fall in the same
fold, so an observer never scores a patient it was trained on. Folds are k = min(``folds``,
number of groups), stratified: groups are dealt in a seeded random order, each into the fold
holding the fewest maps of its own kind (groups with maps of set A only, B only, or both), ties
to the fold with fewest maps. Unstratified folds of two unpaired sets bias the test *below*
chance: a fold that holds more of set A leaves fewer A in its training part, and the
observer's prior leans the other way.

The test is against 0.5, the chance level of two sets of equal size; compare unpaired sets of
(nearly) equal size, or an observer that learns the larger set's prior beats 0.5 by guessing it.
The binomial test counts maps as independent trials; several views of one patient are not
quite, so with many multi-view patients the p-value is somewhat optimistic.

An observer is a callable ``observer(train, labels, test, seed) -> P(label 1)`` for each test
sample: it fits on ``train`` (a list of samples, ``labels`` a 0/1 array) and must depend on
nothing but its arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from scipy import stats

from elastogan.eval.diagnostic import proportion
from elastogan.eval.reader_stats.roc import delong

Observer = Callable[[list, np.ndarray, list, int], np.ndarray]


@dataclass(frozen=True)
class C2STResult:
    """Held-out result of a classifier two-sample test.

    Attributes:
        accuracy: fraction of held-out samples labelled correctly (score > 0.5 means set B).
        ci: exact (Clopper–Pearson) confidence interval of ``accuracy``.
        p: exact two-sided binomial test of ``accuracy`` against 0.5.
        auc: Mann–Whitney AUC of the held-out scores (set B positive).
        n, n_correct: held-out samples and correctly labelled ones.
        folds: number of folds used.
        scores, labels, fold: (n,) held-out P(set B), true labels (0 = A, 1 = B), fold index;
            set A's samples first, then set B's, each in input order.
    """

    accuracy: float
    ci: tuple[float, float]
    p: float
    auc: float
    n: int
    n_correct: int
    folds: int
    scores: np.ndarray
    labels: np.ndarray
    fold: np.ndarray


def accuracy_test(n_correct: int, n: int, level: float = 0.95) -> dict:
    """Accuracy ``k/n`` with its exact CI and the exact two-sided binomial p against 0.5.

    Example (the CI of R's ``?binom.test`` example, 682 of 925: 0.7076683 0.7654066; against
    0.5 the two-sided p of 31 of 40 is ``2 · Σ_{k≥31} C(40, k) / 2⁴⁰``):
        >>> [round(v, 7) for v in accuracy_test(682, 925)["ci"]]
        [0.7076683, 0.7654066]
        >>> from math import comb
        >>> round(accuracy_test(31, 40)["p"], 10) == round(2 * sum(comb(40, k) for k in range(31, 41)) / 2**40, 10)
        True
    """
    if not (isinstance(n, (int, np.integer)) and isinstance(n_correct, (int, np.integer)) and 0 <= n_correct <= n and n > 0):
        raise ValueError(f"expected integers 0 <= n_correct <= n with n > 0, got n_correct={n_correct}, n={n}")
    res = proportion(int(n_correct), int(n), level)
    return {"accuracy": res["value"], "ci": res["ci"], "p": float(stats.binomtest(int(n_correct), int(n), 0.5).pvalue)}


def group_folds(groups: Sequence[str], folds: int = 5, seed: int = 0, strata: Sequence[int] | None = None) -> np.ndarray:
    """Fold index (0 … k−1) of each sample, never splitting a group; k = min(folds, groups).

    Args:
        groups: group of each sample.
        folds: requested number of folds (≥ 2).
        seed: order in which groups are dealt.
        strata: optional label of each sample; groups with the same set of labels are spread
            evenly over the folds (stratified group k-fold).

    Raises:
        ValueError: ``folds`` < 2, fewer than 2 distinct groups, or ``strata`` of another length.

    Example:
        >>> group_folds(["p1", "p1", "p2", "p3", "p3", "p4"], folds=2, seed=0).tolist()
        [1, 1, 0, 0, 0, 1]
    """
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    g = np.asarray([str(x) for x in groups])
    s = np.zeros(len(g), np.int64) if strata is None else np.asarray(strata)
    if s.shape != g.shape:
        raise ValueError(f"expected one stratum per sample ({len(g)}), got {s.shape[0]}")
    names, inverse = np.unique(g, return_inverse=True)
    if len(names) < 2:
        raise ValueError(f"cross-fitting needs at least 2 groups (patients), got {len(names)}")
    k = min(int(folds), len(names))
    kinds = [tuple(np.unique(s[inverse == j]).tolist()) for j in range(len(names))]
    _, kind = np.unique(np.array([str(v) for v in kinds]), return_inverse=True)
    size = np.bincount(inverse)
    load = np.zeros(k, np.int64)  # maps per fold
    kind_load = np.zeros((kind.max() + 1, k), np.int64)  # maps of each kind per fold
    fold_of_group = np.empty(len(names), np.int64)
    for j in np.random.default_rng(seed).permutation(len(names)):
        f = int(np.lexsort((np.arange(k), load, kind_load[kind[j]]))[0])
        fold_of_group[j] = f
        load[f] += size[j]
        kind_load[kind[j], f] += size[j]
    return fold_of_group[inverse]


def two_sample_test(a: Sequence[Any], b: Sequence[Any], groups_a: Sequence[str], groups_b: Sequence[str],
                    observer: Observer, *, folds: int = 5, seed: int = 0, level: float = 0.95) -> C2STResult:
    """Cross-fitted C2ST of sample set ``a`` (label 0) against set ``b`` (label 1).

    The sets may differ in size (two real sets) or be paired (``a[i]``, ``b[i]`` one case's
    real and synthetic map, with ``groups_a == groups_b``). A group in both sets is held out
    as a whole.

    Args:
        a, b: samples the observer understands (maps, or feature vectors).
        groups_a, groups_b: group (patient id) of each sample.
        observer: see the module docstring; called once per fold with seed ``seed + fold``.
        folds: requested number of folds (fewer when there are fewer groups).
        seed: fold assignment and observer seed.
        level: confidence level of ``ci``.

    Raises:
        ValueError: mismatched lengths, an empty set, fewer than 2 groups, a fold whose
            training part lacks one of the sets, or scores that are not finite probabilities.
    """
    if len(a) != len(groups_a) or len(b) != len(groups_b):
        raise ValueError(f"expected one group per sample, got {len(a)} and {len(b)} samples but "
                         f"{len(groups_a)} and {len(groups_b)} groups")
    if not len(a) or not len(b):
        raise ValueError(f"a two-sample test needs samples in both sets, got {len(a)} and {len(b)}")
    samples = [*a, *b]
    labels = np.r_[np.zeros(len(a), np.int64), np.ones(len(b), np.int64)]
    fold = group_folds([*groups_a, *groups_b], folds, seed, strata=labels)
    k = int(fold.max()) + 1
    scores = np.empty(len(samples))
    for f in range(k):
        test = np.flatnonzero(fold == f)
        train = np.flatnonzero(fold != f)
        if len(np.unique(labels[train])) < 2:
            raise ValueError(f"fold {f}: its training part holds only one of the two sets; use fewer folds "
                             "or more groups")
        got = np.asarray(observer([samples[i] for i in train], labels[train], [samples[i] for i in test], seed + f),
                         dtype=np.float64)
        if got.shape != test.shape or not np.all((got >= 0) & (got <= 1)):
            raise ValueError(f"observer must return {len(test)} probabilities in [0, 1], got shape {got.shape}")
        scores[test] = got
    n_correct = int(((scores > 0.5) == (labels == 1)).sum())
    res = accuracy_test(n_correct, len(samples), level)
    return C2STResult(
        accuracy=res["accuracy"], ci=tuple(res["ci"]), p=res["p"], auc=float(delong(scores, labels).auc[0]),
        n=len(samples), n_correct=n_correct, folds=k, scores=scores, labels=labels, fold=fold,
    )
