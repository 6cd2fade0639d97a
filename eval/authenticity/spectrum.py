"""Radially averaged power spectrum of a map: how strain variation splits over spatial scales.

The scanner's strain estimate carries fine texture (decorrelation noise, peak-hopping
streaks) that a generator's smooth conditional mean lacks; the spectrum shows it as missing
power at high frequencies.

Axis legend: ``h`` rows, ``w`` columns; frequencies in cycles per pixel (Nyquist = 0.5).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from elastogan.eval.authenticity.maps import check_map, check_maps

NYQUIST = 0.5


def periodogram(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hann-windowed periodogram of one map and the radial frequency of each of its bins.

    ``P(f) = |DFT[w · (m − m̄_w)]|² / Σ w²`` with ``w`` the separable Hann window and
    ``m̄_w = Σ w m / Σ w`` the window-weighted mean (so no DC leaks through the window).
    By Parseval the mean of ``P`` over all ``h·w`` frequencies is the window-weighted variance
    ``Σ w² (m − m̄_w)² / Σ w²``: maps of any size share one unit (strain² per unit frequency area).

    Returns:
        ``(power, radius)``, both (h, w): ``power`` in FFT order, ``radius = sqrt(fy² + fx²)``.
    """
    m = check_map(m, "map")
    h, w = m.shape
    fy, fx = np.fft.fftfreq(h), np.fft.fftfreq(w)
    radius = np.hypot(fy[:, None], fx[None, :])
    if np.ptp(m) == 0:  # exactly no power, not the rounding noise of subtracting the mean
        return np.zeros((h, w)), radius
    win = np.outer(np.hanning(h), np.hanning(w))  # (h, w)
    centred = m - (win * m).sum() / win.sum()
    power = np.abs(np.fft.fft2(win * centred)) ** 2 / (win**2).sum()
    return power, radius


def radial_spectrum(m: np.ndarray, bins: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum on ``bins`` equal frequency bins over [0, 0.5].

    Each bin holds the mean periodogram power over the frequencies whose radius falls in it
    (the corners beyond 0.5 cycles/pixel are left out). A small map has bins no DFT frequency
    falls in; those are linearly interpolated from their neighbours, so every value is finite.

    Args:
        m: (h, w) map, at least 8×8.
        bins: number of frequency bins.

    Returns:
        ``(frequency, power)``: bin centres (cycles/pixel) and mean power, both (bins,).
    """
    edges = _edges(bins)
    centres = (edges[:-1] + edges[1:]) / 2
    power, radius = periodogram(m)
    inside = radius <= NYQUIST
    idx = np.minimum(np.digitize(radius[inside], edges) - 1, bins - 1)
    total = np.bincount(idx, weights=power[inside], minlength=bins)
    count = np.bincount(idx, minlength=bins)
    filled = count > 0
    mean = np.interp(centres, centres[filled], total[filled] / count[filled])
    return centres, mean


def mean_spectrum(maps: Sequence[np.ndarray], bins: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """:func:`radial_spectrum` averaged over a set of maps (each map weighs the same)."""
    maps = check_maps(maps, "maps")
    if not maps:
        raise ValueError("mean_spectrum needs at least one map, got none")
    spectra = [radial_spectrum(m, bins)[1] for m in maps]
    edges = _edges(bins)
    return (edges[:-1] + edges[1:]) / 2, np.mean(spectra, axis=0)


def _edges(bins: int) -> np.ndarray:
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
    return np.linspace(0.0, NYQUIST, bins + 1)
