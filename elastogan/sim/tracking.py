"""Fast, quality-guided axial displacement tracking of ultrasound frame pairs.

Axis legend: ``L`` scan lines, ``Z`` RF samples in depth (line-major arrays are ``(L, Z)``),
``N`` windows down a line, ``O`` lags searched around a window's predicted lag.

The v1 tracker (:func:`elastogan.sim.strain.track_displacement`) walks down each line window by
window, searching around the lag of the window above; one decorrelated window can derail the
rest of the line. This module tracks every window of every line at once and guides the result
by correlation quality, as the quality-guided trackers of Chen, Treece, Lindop, Gee and Prager
(Med Image Anal 2009; "Quality-guided displacement tracking for ultrasonic elasticity imaging")
do, in three vectorised stages:

1. **Coarse**: envelope (|IQ|) correlation on a decimated grid over the whole search range,
   longer windows, every ``coarse_line_step``-th line — envelopes carry no phase ambiguity, so
   this finds the right RF period everywhere the speckle is trackable. A quality-weighted
   median smooths it into the prediction of the fine stage.
2. **Fine**: RF normalised cross-correlation of every window at ``prediction ± search`` lags
   (a gather of one segment per window, one multiply-reduce per lag: no per-window Python
   loop), parabolic sub-sample peak, peak NCC as the window's quality.
3. **Quality guidance**: a window whose displacement departs by more than half an RF period
   from the quality-weighted mean of its neighbours (a peak hop), or whose peak was not
   bracketed by the search, is re-tracked around that mean and keeps the better-correlated
   answer; repeated so that good estimates grow from high-quality seeds into poor regions.
   Chen et al. order this with a priority queue, one window at a time; the parallel sweeps
   reach the same fixed point on smooth fields at a fraction of the Python cost.

Strain is the least-squares slope of the displacement (:func:`elastogan.sim.strain.lsq_strain`),
its quality the mean peak NCC over the slope's support.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from elastogan.sim.strain import lsq_strain


@dataclass(frozen=True)
class Tracking:
    """Per-window results on the (n_windows, n_lines) estimation grid (v1's layout)."""

    displacement: np.ndarray  # (N, L) float64 samples, positive = away from the transducer
    quality: np.ndarray  # (N, L) float32 peak RF NCC in [-1, 1]
    centers: np.ndarray  # (N,) window centres, in samples
    repaired: float  # fraction of windows changed by quality guidance


def rf_lines(iq: np.ndarray, phase_per_sample: float) -> np.ndarray:
    """Real RF of line-major IQ (L, Z): ``Re{iq · exp(iφ(n + ½))}`` (remodulated at f0), float32.

    ``phase_per_sample`` is ``2 k₀ dz``; the half-sample offset matches
    :func:`elastogan.sim.ultrasound.rf_from_baseband` (samples sit at cell centres).
    """
    n = np.arange(iq.shape[1])
    carrier = np.exp(1j * phase_per_sample * (n + 0.5)).astype(np.complex64)
    return (iq.real * carrier.real - iq.imag * carrier.imag).astype(np.float32)


def window_starts(nz: int, window: int, step: int, margin: int) -> np.ndarray:
    """First sample of each window: ``margin, margin + step, …`` while the window fits with the margin."""
    starts = np.arange(margin, nz - window - margin, step)
    if len(starts) < 3:
        raise ValueError(f"RF too short ({nz} samples) for window {window}, step {step} and margin {margin}")
    return starts


@dataclass(frozen=True)
class PreparedFrame:
    """A line-major real signal zero-padded by ``pad`` samples at both ends, with cumulative
    sums of it and of its square along depth (float64), so that any window's mean and energy
    cost two look-ups. A frame is prepared once and serves both pairs it belongs to."""

    signal: np.ndarray  # (L, Z + 2·pad) float32
    c1: np.ndarray  # (L, Z + 2·pad + 1) float64
    c2: np.ndarray  # (L, Z + 2·pad + 1) float64
    pad: int

    @classmethod
    def of(cls, signal: np.ndarray, pad: int) -> "PreparedFrame":
        padded = np.pad(np.asarray(signal, dtype=np.float32), ((0, 0), (pad, pad)))
        p64 = padded.astype(np.float64)
        zero = np.zeros((padded.shape[0], 1))
        return cls(padded, np.concatenate([zero, np.cumsum(p64, axis=1)], axis=1),
                   np.concatenate([zero, np.cumsum(p64 * p64, axis=1)], axis=1), pad)

    def window_sums(self, lines: np.ndarray, first: np.ndarray, window: int, count: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Σx and Σx² over ``window`` samples from unpadded samples ``first + (0 … count − 1)``,
        for (M,) ``lines`` and ``first``; returns (M, count) arrays."""
        i0 = first + self.pad
        out = []
        for c in (self.c1, self.c2):
            view = np.lib.stride_tricks.sliding_window_view(c, count, axis=1)  # (L, Zp + 2 − count, count), no copy
            out.append(view[lines, i0 + window] - view[lines, i0])
        return out[0], out[1]

    def segments(self, lines: np.ndarray, first: np.ndarray, length: int) -> np.ndarray:
        """(M, length) samples from unpadded sample ``first`` of each line: M row copies, no index grid."""
        view = np.lib.stride_tricks.sliding_window_view(self.signal, length, axis=1)  # (L, Zp − length + 1, length)
        return view[lines, first + self.pad]


def ncc_peaks(pre: PreparedFrame, post: PreparedFrame, lines: np.ndarray, starts: np.ndarray, pred: np.ndarray,
              window: int, search: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NCC of pre windows against post at ``pred + (−search … search)`` lags, for many windows at once.

    ``ncc = (Σab − Σa·Σb/W) / √((Σa² − (Σa)²/W)(Σb² − (Σb)²/W))``, the Pearson correlation of
    the two windows, evaluated for every window with one gather and one multiply-reduce per lag.

    Args:
        pre, post: the two frames, prepared with the same padding.
        lines, starts, pred: (M,) line index, first sample and integer predicted lag of each
            window; lags are clipped so that segments stay inside the padding.
        window: window length in samples.
        search: lags searched each side of ``pred``.

    Returns:
        ``(lag, peak, bracketed)``, each (M,): sub-sample lag of the peak (parabolic), the peak
        NCC, and whether the peak lies strictly inside the searched lags.
    """
    n_lag = 2 * search + 1
    nz = pre.signal.shape[1] - 2 * pre.pad
    pred = np.clip(pred, -(post.pad - search) - starts, nz + post.pad - search - window - starts)
    a = pre.segments(lines, starts, window)  # (M, W)
    seg0 = starts + pred - search
    b = post.segments(lines, seg0, window + n_lag - 1)  # (M, W + O − 1)
    sa1, sa2 = (v[:, 0] for v in pre.window_sums(lines, starts, window))  # (M,)
    sb1, sb2 = post.window_sums(lines, seg0, window, n_lag)  # (M, O)
    a_var = np.maximum(sa2 - sa1 * sa1 / window, 0.0)
    b_var = np.maximum(sb2 - sb1 * sb1 / window, 0.0)
    num = np.empty((len(a), n_lag), dtype=np.float64)
    for o in range(n_lag):  # a loop over lags, not windows: each pass covers every window
        num[:, o] = np.einsum("mw,mw->m", a, b[:, o : o + window])
    num -= sa1[:, None] * sb1 / window
    ncc = num / (np.sqrt(a_var[:, None] * b_var) + 1e-12)  # (M, O)
    k = np.argmax(ncc, axis=1)
    rows = np.arange(len(k))
    c0 = ncc[rows, k]
    cm = ncc[rows, np.maximum(k - 1, 0)]
    cp = ncc[rows, np.minimum(k + 1, n_lag - 1)]
    bracketed = (k > 0) & (k < n_lag - 1)
    denom = cm - 2.0 * c0 + cp
    ok = bracketed & (denom < 0)
    frac = np.zeros(len(k))
    frac[ok] = 0.5 * (cm[ok] - cp[ok]) / denom[ok]
    return pred + (k - search) + frac, c0, bracketed


@dataclass(frozen=True)
class TrackFrame:
    """One frame ready for tracking: its RF and its decimated envelope, both prepared."""

    rf: PreparedFrame  # (L, Z) RF, float32, padded
    envelope: PreparedFrame  # (L // line_step, Z // decimation) mean |IQ| per block
    nz: int
    decimation: int
    line_step: int


def prepare_frame(iq: np.ndarray, *, phase_per_sample: float, max_lag: int, window: int, search: int = 4,
                  decimation: int = 4, line_step: int = 4) -> TrackFrame:
    """RF and coarse envelope of line-major IQ (L, Z), padded for lags up to ``max_lag``."""
    nl, nz = iq.shape
    nd = nz // decimation
    env = np.abs(iq[::line_step, : nd * decimation]).reshape(-1, nd, decimation).mean(axis=2)
    pad = max_lag + search + window
    return TrackFrame(PreparedFrame.of(rf_lines(iq, phase_per_sample), pad),
                      PreparedFrame.of(env, pad // decimation + 2), nz, decimation, line_step)


def _coarse_prediction(pre: TrackFrame, post: TrackFrame, starts: np.ndarray, window: int, max_lag: int) -> np.ndarray:
    """Smooth integer lag prediction (L, N) from decimated envelope correlation over ±max_lag."""
    dec, line_step = pre.decimation, pre.line_step
    n_lines, nd = pre.envelope.signal.shape[0], pre.envelope.signal.shape[1] - 2 * pre.envelope.pad
    cw = max(8, 2 * window // dec)  # coarse window: twice the fine one
    cstep = max(1, cw // 2)
    search = int(np.ceil(max_lag / dec)) + 1
    cstarts = np.arange(0, nd - cw + 1, cstep)
    if len(cstarts) < 2:
        raise ValueError(f"RF too short ({pre.nz} samples) for a coarse window of {cw * dec} samples")
    li, si = np.meshgrid(np.arange(n_lines), cstarts, indexing="ij")  # (Lc, Nc)
    lag, peak, _ = ncc_peaks(pre.envelope, post.envelope, li.ravel(), si.ravel(), np.zeros(li.size, np.int64), cw, search)
    lag = lag.reshape(n_lines, len(cstarts)) * dec
    peak = peak.reshape(n_lines, len(cstarts))
    # Robust smoothing: a median over 3×3 coarse cells, then reliable cells (peak above half the
    # median peak) spread into unreliable ones by normalised convolution.
    lag = ndimage.median_filter(lag, size=3, mode="nearest")
    good = (peak > 0.5 * np.median(peak)).astype(np.float64)
    num = ndimage.uniform_filter(lag * good, size=3, mode="nearest")
    den = ndimage.uniform_filter(good, size=3, mode="nearest")
    lag = np.where(den > 1e-6, num / np.maximum(den, 1e-6), lag)
    # Onto the fine grid: coarse cell centres (samples, lines) → linear interpolation.
    c_centre = (cstarts + cw / 2.0) * dec
    nl = pre.rf.signal.shape[0]
    zi = np.interp(starts + window / 2.0, c_centre, np.arange(len(c_centre)))
    xi = np.interp(np.arange(nl), np.arange(n_lines) * line_step, np.arange(n_lines))
    coords = np.stack(np.meshgrid(xi, zi, indexing="ij"))  # (2, L, N)
    return np.rint(ndimage.map_coordinates(lag, coords, order=1, mode="nearest")).astype(np.int64)


def track_frames(pre: TrackFrame, post: TrackFrame, *, period: float, window: int, step: int, max_lag: int,
                 search: int = 4, margin: int = 5, guidance_passes: int = 3) -> Tracking:
    """Quality-guided displacement of ``post`` relative to ``pre`` along every line.

    Args:
        pre, post: frames from :func:`prepare_frame` with the same settings.
        period: RF period in samples (``2π / (2 k₀ dz)``): a jump of one period is a peak hop.
        window, step: RF correlation window and window step, in samples.
        max_lag: largest displacement to expect anywhere, in samples (the coarse search range).
        search: fine lags searched each side of the prediction; about half an RF period or more.
        margin: samples kept clear at each end of a line (v1 keeps its search, 5).
        guidance_passes: quality-guidance sweeps (0 switches guidance off).

    Returns:
        :class:`Tracking` on windows ``window_starts(Z, window, step, margin)``.
    """
    if pre.rf.signal.shape != post.rf.signal.shape:
        raise ValueError(f"frames differ in shape: {pre.rf.signal.shape} vs {post.rf.signal.shape}")
    if window < 4 or step < 1 or search < 1 or max_lag < 1:
        raise ValueError(f"window ≥ 4, step ≥ 1, search ≥ 1 and max_lag ≥ 1 expected, got {window}, {step}, {search}, {max_lag}")
    nl = pre.rf.signal.shape[0]
    starts = window_starts(pre.nz, window, step, margin)
    n_win = len(starts)
    pred = _coarse_prediction(pre, post, starts, window, max_lag)  # (L, N)
    li, si = np.meshgrid(np.arange(nl), starts, indexing="ij")  # (L, N)
    li, si = li.ravel(), si.ravel()
    lag, peak, inside = ncc_peaks(pre.rf, post.rf, li, si, pred.ravel(), window, search)  # (L·N,)
    changed = np.zeros(nl * n_win, bool)
    for _ in range(guidance_passes):
        # Neighbours' quality-weighted mean (3 lines × 5 windows, self excluded): seeds with a
        # high NCC dominate, poor windows barely count.
        d2, w2 = lag.reshape(nl, n_win), np.where(inside, np.clip(peak, 0.0, 1.0) ** 4, 0.0).reshape(nl, n_win)
        num = (ndimage.uniform_filter(w2 * d2, size=(3, 5), mode="nearest") * 15 - w2 * d2).ravel()
        den = (ndimage.uniform_filter(w2, size=(3, 5), mode="nearest") * 15 - w2).ravel()
        ref = num / np.maximum(den, 1e-9)
        new_pred = np.rint(ref).astype(np.int64)
        suspect = (den > 1e-3) & ((np.abs(lag - ref) > 0.5 * period) | ~inside) & (new_pred != np.rint(lag))
        sel = np.flatnonzero(suspect)
        if not len(sel):
            break
        lag2, peak2, in2 = ncc_peaks(pre.rf, post.rf, li[sel], si[sel], new_pred[sel], window, search)
        better = (peak2 > peak[sel]) | (~inside[sel] & in2)
        sel = sel[better]
        lag[sel], peak[sel], inside[sel] = lag2[better], peak2[better], in2[better]
        changed[sel] = True
    return Tracking(displacement=np.ascontiguousarray(lag.reshape(nl, n_win).T),
                    quality=np.ascontiguousarray(peak.reshape(nl, n_win).T).astype(np.float32),
                    centers=starts + window / 2.0 - 0.5, repaired=float(changed.mean()))


def track(pre_iq: np.ndarray, post_iq: np.ndarray, *, phase_per_sample: float, window: int, step: int,
          max_lag: int, search: int = 4, margin: int = 5, guidance_passes: int = 3) -> Tracking:
    """:func:`track_frames` of two line-major IQ frames (L, Z); ``phase_per_sample`` is ``2 k₀ dz``."""
    if pre_iq.shape != post_iq.shape or pre_iq.ndim != 2:
        raise ValueError(f"expected two line-major (L, Z) frames of one shape, got {pre_iq.shape} and {post_iq.shape}")
    kw = dict(phase_per_sample=phase_per_sample, max_lag=max_lag, window=window, search=search)
    return track_frames(prepare_frame(pre_iq, **kw), prepare_frame(post_iq, **kw), period=2.0 * np.pi / phase_per_sample,
                        window=window, step=step, max_lag=max_lag, search=search, margin=margin,
                        guidance_passes=guidance_passes)


def strain_and_quality(tracking: Tracking, step: int, lsq_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Compressive axial strain (least squares over ``lsq_points`` windows) and its quality.

    Returns:
        ``(strain, quality)``, (N, L) each: strain positive under compression; quality the mean
        peak NCC over the windows the slope uses, clipped to [0, 1].
    """
    strain = lsq_strain(tracking.displacement, step, lsq_points)
    quality = ndimage.uniform_filter1d(np.clip(tracking.quality, 0.0, 1.0), lsq_points, axis=0, mode="nearest")
    return strain, quality.astype(np.float32)
