"""Does a sampling generator's uncertainty mean something? (issue 11 §3)

``calibration`` holds the pure statistics ``elastogan evaluate`` reports per case and per
checkpoint: the coverage of the samples' predictive interval, and how well the per-pixel sd
(and a case's mean sd) tracks the real error.
"""
