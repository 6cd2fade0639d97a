"""Strain-image quality in the field's own terms, and the strain filter's prediction of it.

Pure functions of arrays and numbers.

- **SNRe** (elastographic signal-to-noise ratio): mean / standard deviation of the strain in a
  homogeneous region (Ophir et al. 1991; Varghese and Ophir 1997).
- **CNRe** (elastographic contrast-to-noise ratio; Varghese and Ophir, "An analysis of
  elastographic contrast-to-noise ratio", Ultrasound Med Biol 24(6):915–924, 1998):
  ``CNRe = 2 (m_t − m_b)² / (σ_t² + σ_b²)`` of target and background strain.
- **Outlier share**: the fraction of pixels whose strain lies more than a factor away from the
  truth (or from the median where the truth is uniform), both normalised by their medians.
- **The strain filter** (Varghese and Ophir, "A theoretical framework for performance
  characterization of elastography: the strain filter", IEEE TUFFC 44(1):164–172, 1997): the
  upper bound on SNRe at a given strain, ``SNRe ≤ ε / σ_ε`` with ``σ_ε = √2 · σ_τ / ΔT``
  (two delay estimates ΔT apart) and σ_τ the Ziv–Zakai lower bound (ZZLB) on the time-delay
  error of partially correlated speckle. In its small-error region the ZZLB is the Cramér–Rao
  bound of Walker and Trahey (IEEE TUFFC 42(2):301–308, 1995),
  ``σ²_CRLB = 3 / (2 f₀³ π² T (B³ + 12B)) · ((1/ρ²)(1 + 1/SNR²)² − 1)``
  (f₀ centre frequency, B fractional bandwidth of a flat band, T window duration, SNR the echo
  amplitude SNR, ρ the correlation of pre- and post-compression echoes); at lower SNR or
  correlation, ambiguity (peak hopping to a neighbouring RF cycle) raises it, and at the
  lowest it is the a priori variance of a delay uniform over the search range. Varghese and
  Ophir use Weinstein and Weiss's (IEEE TASSP 32:1064, 1984) closed-form piecewise
  approximation of these three regions; here the same bound is integrated numerically,
  ``σ²_ZZLB = ∫₀ᴰ h (1 − h/D) P_e(h) dh`` with ``P_e(h) = Q(√((1 − r(h)) / (2 β² σ²_CRLB)))``,
  r the echo autocorrelation and β² = −r''(0), which equals the CRLB exactly when errors are
  small and D²/12 when the echoes carry no information. The correlation lost to strain is
  that of a window whose echoes drift apart linearly with strain from its centre (no
  companding): ``ρ(ε) = (1/T) ∫_{−T/2}^{T/2} r(ε t) dt``.

The bound is for one displacement pair and a two-point gradient: with least squares over N
estimates Δ apart, ``σ_ε = σ_τ · √(12 / (N (N² − 1))) / Δ`` (independent errors), and an
average of K independent pairs raises the bound by √K.

Equation numbers of the 1997 paper could not be checked here (only its abstract is in the
stored literature); the formulas are those of the cited sources, which the paper combines.
"""

from __future__ import annotations

import numpy as np
from scipy import special


def snr_e(strain: np.ndarray, region: np.ndarray) -> float:
    """SNRe = mean / sd of ``strain`` over the boolean ``region`` (a homogeneous area).

    >>> snr_e(np.array([1.0, 2.0, 3.0]), np.array([True, True, True]))  # mean 2, sd sqrt(2/3)
    2.449489742783178
    """
    v = np.asarray(strain, dtype=np.float64)[np.asarray(region, dtype=bool)]
    if v.size < 2:
        raise ValueError(f"SNRe needs at least 2 pixels in the region, got {v.size}")
    sd = float(v.std())
    return float(v.mean()) / sd if sd > 0 else float("inf")


def cnr_e(strain: np.ndarray, target: np.ndarray, background: np.ndarray) -> float:
    """CNRe = 2 (m_t − m_b)² / (σ_t² + σ_b²) (Varghese and Ophir 1998), as a ratio (not dB).

    >>> cnr_e(np.array([1.0, 3.0, 5.0, 7.0]), np.array([1, 1, 0, 0], bool), np.array([0, 0, 1, 1], bool))
    16.0
    """
    s = np.asarray(strain, dtype=np.float64)
    t, b = s[np.asarray(target, dtype=bool)], s[np.asarray(background, dtype=bool)]
    if t.size < 2 or b.size < 2:
        raise ValueError(f"CNRe needs at least 2 pixels in target and background, got {t.size} and {b.size}")
    var = float(t.var() + b.var())
    return 2.0 * (float(t.mean()) - float(b.mean())) ** 2 / var if var > 0 else float("inf")


def outlier_share(strain: np.ndarray, region: np.ndarray, reference: np.ndarray | None = None, factor: float = 2.0) -> float:
    """Fraction of ``region`` where the median-normalised strain is more than ``factor`` times
    above or below the median-normalised ``reference`` (the truth; ``None``: uniform, 1).

    >>> outlier_share(np.array([1.0, 1.1, 0.9, 5.0, -1.0]), np.ones(5, bool))
    0.4
    """
    if factor <= 1.0:
        raise ValueError(f"factor must exceed 1, got {factor}")
    m = np.asarray(region, dtype=bool)
    s = np.asarray(strain, dtype=np.float64)[m]
    s = s / np.median(s)
    r = np.ones_like(s) if reference is None else np.asarray(reference, dtype=np.float64)[m]
    r = r / np.median(r)
    bad = (s * factor < r) | (s > r * factor)
    return float(bad.mean())


def echo_autocorrelation(tau_s: np.ndarray, f0_hz: float, bandwidth: float) -> np.ndarray:
    """Normalised autocorrelation of speckle echoes with a flat band ``f₀(1 ± B/2)``:
    ``sinc(B f₀ τ) cos(2π f₀ τ)`` (the spectrum of the Walker–Trahey bound)."""
    tau = np.asarray(tau_s, dtype=np.float64)
    return np.sinc(bandwidth * f0_hz * tau) * np.cos(2.0 * np.pi * f0_hz * tau)


def strain_decorrelation(strain: float | np.ndarray, f0_hz: float, bandwidth: float, window_s: float,
                         samples: int = 257) -> np.ndarray:
    """ρ(ε) = (1/T) ∫ r(ε t) dt over a window of duration T centred on the tracked point."""
    eps = np.atleast_1d(np.asarray(strain, dtype=np.float64))
    t = np.linspace(-0.5 * window_s, 0.5 * window_s, samples)
    r = echo_autocorrelation(np.abs(eps)[:, None] * t[None, :], f0_hz, bandwidth)
    return np.trapezoid(r, t, axis=1) / window_s


def crlb_delay_variance(f0_hz: float, bandwidth: float, window_s: float, rho: np.ndarray | float, snr_db: float) -> np.ndarray:
    """Walker and Trahey (1995) lower bound on the time-delay variance (s²) of partially
    correlated speckle: ``3 / (2 f₀³ π² T (B³ + 12B)) · ((1/ρ²)(1 + 1/SNR²)² − 1)``,
    SNR the echo amplitude ratio (``snr_db`` in dB of power: SNR² = 10^(dB/10))."""
    rho = np.clip(np.asarray(rho, dtype=np.float64), 1e-6, 1.0)
    inv_snr2 = 10.0 ** (-snr_db / 10.0)
    k = 3.0 / (2.0 * f0_hz**3 * np.pi**2 * window_s * (bandwidth**3 + 12.0 * bandwidth))
    return k * ((1.0 + inv_snr2) ** 2 / rho**2 - 1.0)


def zzlb_delay_variance(f0_hz: float, bandwidth: float, window_s: float, rho: np.ndarray | float, snr_db: float,
                        prior_width_s: float, samples: int = 4097) -> np.ndarray:
    """Ziv–Zakai lower bound (s²) on the delay variance, by numerical integration over a delay
    uniform on ``[0, prior_width_s]`` (see the module docstring)."""
    crlb = np.atleast_1d(crlb_delay_variance(f0_hz, bandwidth, window_s, rho, snr_db))
    # Log-spaced lags resolve both the CRLB's scale (sub-nanosecond) and the RF cycles.
    smallest = min(float(np.sqrt(crlb.min())) * 1e-3, prior_width_s * 1e-6)
    h = np.concatenate([[0.0], np.geomspace(smallest, prior_width_s, samples)])
    beta2 = (2.0 * np.pi * f0_hz) ** 2 * (1.0 + bandwidth**2 / 12.0)  # −r''(0) of the flat band
    one_minus_r = np.maximum(1.0 - echo_autocorrelation(h, f0_hz, bandwidth), 0.0)
    arg = np.sqrt(one_minus_r[None, :] / (2.0 * beta2 * crlb[:, None]))
    p_err = 0.5 * special.erfc(arg / np.sqrt(2.0))  # Q(arg)
    return np.trapezoid(h[None, :] * (1.0 - h[None, :] / prior_width_s) * p_err, h, axis=1)


def strain_filter_snre(strain: float | np.ndarray, *, f0_mhz: float, bandwidth: float, window_mm: float, snr_db: float,
                       baseline_mm: float, sound_speed: float = 1540.0, prior_width_mm: float | None = None,
                       extra_correlation: float = 1.0) -> np.ndarray:
    """The strain filter: upper bound on SNRe at each strain (Varghese and Ophir 1997).

    Args:
        strain: tissue strain(s), fraction.
        f0_mhz: centre frequency.
        bandwidth: fractional bandwidth of the (flat) echo band.
        window_mm: correlation window length in depth (duration T = 2 · length / c).
        snr_db: echo SNR (power, dB).
        baseline_mm: separation ΔT of the two delay estimates whose difference gives the strain,
            in depth (for a least-squares fit use the equivalent of the module docstring).
        sound_speed: m/s.
        prior_width_mm: range over which the delay is a priori uniform (the search range); by
            default one window.
        extra_correlation: other decorrelation (lateral, elevational motion) multiplying ρ(ε).

    Returns:
        SNRe bound per strain, ``ε / (√2 σ_ZZLB / ΔT)``.
    """
    if min(f0_mhz, bandwidth, window_mm, baseline_mm) <= 0 or not 0 < extra_correlation <= 1:
        raise ValueError("f0_mhz, bandwidth, window_mm and baseline_mm must be positive and extra_correlation in (0, 1]")
    to_s = 2.0 / (sound_speed * 1e3)  # mm of depth → s of echo time
    f0 = f0_mhz * 1e6
    t_win = window_mm * to_s
    eps = np.atleast_1d(np.asarray(strain, dtype=np.float64))
    rho = strain_decorrelation(eps, f0, bandwidth, t_win) * extra_correlation
    prior = (prior_width_mm if prior_width_mm is not None else window_mm) * to_s
    sigma_tau = np.sqrt(zzlb_delay_variance(f0, bandwidth, t_win, rho, snr_db, prior))
    return np.abs(eps) * baseline_mm * to_s / (np.sqrt(2.0) * sigma_tau)


def lsq_equivalent_baseline_mm(step_mm: float, points: int) -> float:
    """ΔT at which the two-point gradient's noise equals a least-squares slope over ``points``
    estimates ``step_mm`` apart with independent errors: ``√2 / √(12 / (N (N² − 1))) · step``.

    >>> round(lsq_equivalent_baseline_mm(0.3, 9), 4)
    3.2863
    """
    if points < 2:
        raise ValueError(f"points must be at least 2, got {points}")
    return float(np.sqrt(2.0) * step_mm / np.sqrt(12.0 / (points * (points**2 - 1))))
