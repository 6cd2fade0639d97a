"""Reader-study statistics: what radiologists' readings say, and how many readings a study needs.

* ``roc``: empirical AUC with DeLong's covariance and the DeLong tests.
* ``mrmc``: Obuchowski–Rockette MRMC with Hillis's df for paired, nested, split-plot and
  partially paired designs (the design is inferred from who read which case).
* ``roe_metz``: the Roe–Metz simulation model (seeded), the independent check of ``mrmc`` and
  ``power``.
* ``power``: readers × cases for a target power (Hillis, Obuchowski & Berbaum 2011).
* ``repeats``: intra-reader agreement on repeated readings and reading-time summaries.
* ``stats_io`` reads the app's CSV exports; ``reader_study`` turns them into the JSON of
  ``elastogan stats``; ``roc_figure`` draws the ROC curves.
"""
