"""The docstring examples of the statistics modules run (one reproduces Krippendorff 2011)."""

from __future__ import annotations

import doctest

import pytest

from elastogan.eval import agreement, metrics, paired
from elastogan.eval.authenticity import readers
from elastogan.eval.reader_stats import power, repeats, roc, roe_metz


@pytest.mark.parametrize("module", [agreement, metrics, paired, roc, power, repeats, roe_metz, readers],
                         ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
