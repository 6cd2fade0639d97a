"""The docstring examples of the statistics modules run (one reproduces Krippendorff 2011)."""

from __future__ import annotations

import doctest

import pytest

from elastogan.eval import agreement, metrics, paired, roc


@pytest.mark.parametrize("module", [agreement, metrics, paired, roc], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
