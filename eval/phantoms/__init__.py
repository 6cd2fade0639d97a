"""Analyses of the simulated data sets themselves: how hard their diagnosis is."""
