"""Typed settings of the phantom simulator. Every number the physics uses lives here."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from elastogan import typed_config
from elastogan.sim.sequence import ScannerSettings

LESION_CLASSES = ("cyst", "fibroadenoma", "carcinoma")
SIMULATORS = ("v1", "v2")  # v1: phantom-v1, kept byte for byte; v2: layered anatomy, lexicon lesions, scanner strain
# The smallest lesions (≈ 12 mm²) need ≥ 9 pixels to be scored and a strain ratio measured.
MAX_PIXEL_MM = 0.85
MAX_PROPERTY_GRID = 2048  # tissue property grid per side (memory: several float64 maps)

# Accepted values of each numeric setting (inclusive; for a ``(low, high)`` range, both ends).
# Outside them the simulator either makes images no scanner would (an SNR of 0 dB; a Poisson
# ratio of 0.5, where the plane-strain stiffness is infinite) or fails part-way through a run,
# so they are refused at the door. ``size`` starts at 48 (0.83 mm pixels over the default
# 40 mm; see MAX_PIXEL_MM) and ``field_mm`` at 30 because the tissue model places lesions
# 9–27 mm deep; above 3 % compression the speckle decorrelates until the strain estimate is
# noise (its mean in the ROI can come out negative).
LIMITS: dict[str, tuple[float, float]] = {
    "size": (48, 1024),
    "field_mm": (30.0, 80.0),
    "fem_elements": (16, 256),
    "property_factor": (1, 16),
    "scatterers_per_mm2": (1.0, 1000.0),
    "sound_speed": (1300.0, 1800.0),
    "sampling_mhz": (5.0, 160.0),
    "f0_mhz": (1.0, 30.0),
    "bandwidth": (0.1, 1.5),
    "lateral_sigma_mm": (0.02, 2.0),
    "snr_db": (10.0, 80.0),
    "dynamic_range_db": (20.0, 120.0),
    "applied_strain": (0.0001, 0.03),
    "nu": (0.0, 0.4999),
    "ncc_window_mm": (0.2, 10.0),
    "ncc_step_mm": (0.01, 5.0),
    "lsq_points": (2, 64),
    "alpha": (0.01, 1.0),
}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class SimConfig:
    """Simulator settings (DESIGN §3). Ranges are ``(low, high)`` drawn uniformly per case.

    Every value is checked on construction against its type and ``LIMITS``; a ``ValueError``
    names the field, what it accepts and what it got.

    Args:
        simulator: the simulator version. ``"v1"`` (the default, phantom-v1): thresholded
            tissue, a pre/post RF pair; kept byte for byte. ``"v2"`` (phantom-v2): layered
            anatomy, BI-RADS lexicon lesions, a freehand compression sequence with
            quality-guided tracking and a quality-weighted, gated composite (``scanner``).
        size: output frame, ``size × size`` pixels (B-mode, E-mode, strain); a multiple of 8,
            with pixels of at most ``MAX_PIXEL_MM`` (size ≥ 48 over the default 40 mm).
        field_mm: lateral and axial extent of the imaged tissue.
        fem_elements: FEM elements per side (Q1, selective reduced integration).
        property_factor: tissue property grid = ``fem_elements · property_factor`` per side
            (at most ``MAX_PROPERTY_GRID``).
        scatterers_per_mm2: point scatterer density (≥ ~10 per resolution cell for fully
            developed speckle).
        sound_speed: m/s.
        sampling_mhz: RF sampling rate of the baseband grid; above the Nyquist rate of the
            pulse's highest frequency, ``2 · f0 · (1 + bandwidth / 2)``.
        f0_mhz: transmit centre frequency range.
        bandwidth: fractional −6 dB bandwidth range.
        lateral_sigma_mm: lateral PSF σ at the focus and at the field's far edge.
        snr_db: echo signal-to-noise ratio range (electronic noise, independent per frame).
        dynamic_range_db: log-compression range.
        applied_strain: axial compression range (fraction).
        nu: Poisson's ratio (below 0.5: incompressible tissue has no plane-strain solution).
        ncc_window_mm, ncc_step_mm: cross-correlation window (at least 3 wavelengths at the
            lowest f0) and step (at most the window, at least one RF sample) along each line.
        lsq_points: displacement estimates per least-squares strain fit.
        alpha: E-mode colour opacity range.
        colormap: display map of the simulated scanner (a name from
            ``elastogan.colormaps.COLORMAPS``).
        class_mix: probabilities of cyst, fibroadenoma, carcinoma.
        scanner: v2 only: the freehand sequence and how strain is formed from it
            (``elastogan.sim.sequence.ScannerSettings``); its tracking window, step and
            least-squares points are ``ncc_window_mm``, ``ncc_step_mm`` and ``lsq_points``
            above, as in v1. Not written in a v1 recipe.
    """

    simulator: Literal["v1", "v2"] = "v1"
    size: int = 256
    field_mm: float = 40.0
    fem_elements: int = 96
    property_factor: int = 4
    scatterers_per_mm2: float = 100.0
    sound_speed: float = 1540.0
    sampling_mhz: float = 40.0
    f0_mhz: tuple[float, float] = (6.0, 10.0)
    bandwidth: tuple[float, float] = (0.5, 0.8)
    lateral_sigma_mm: tuple[float, float] = (0.12, 0.22)
    snr_db: tuple[float, float] = (20.0, 40.0)
    dynamic_range_db: tuple[float, float] = (50.0, 60.0)
    applied_strain: tuple[float, float] = (0.005, 0.015)
    nu: float = 0.495
    ncc_window_mm: float = 1.5
    ncc_step_mm: float = 0.3
    lsq_points: int = 9
    alpha: tuple[float, float] = (0.4, 0.6)
    colormap: str = "hitachi"
    class_mix: dict[str, float] = field(
        default_factory=lambda: {"cyst": 0.2, "fibroadenoma": 0.4, "carcinoma": 0.4}
    )
    scanner: ScannerSettings = field(default_factory=ScannerSettings)

    def __post_init__(self) -> None:
        from elastogan.colormaps import COLORMAPS

        if self.simulator not in SIMULATORS:
            raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, got {self.simulator!r}")
        for f in fields(self):
            if f.name in LIMITS:
                _check_number(f.name, getattr(self, f.name), type(f.default))
        if self.size % 8:
            raise ValueError(f"size must be a multiple of 8, got {self.size}")
        if self.field_mm / self.size > MAX_PIXEL_MM:
            smallest = 8 * math.ceil(self.field_mm / MAX_PIXEL_MM / 8)
            raise ValueError(
                f"size {self.size} over field_mm {self.field_mm:g} gives {self.field_mm / self.size:.2f} mm "
                f"pixels; at most {MAX_PIXEL_MM} mm (size >= {smallest}) so that the smallest lesions can be scored"
            )
        grid = self.fem_elements * self.property_factor
        if grid > MAX_PROPERTY_GRID:
            raise ValueError(
                f"fem_elements × property_factor must be at most {MAX_PROPERTY_GRID}, got "
                f"{self.fem_elements} × {self.property_factor} = {grid}"
            )
        if not isinstance(self.colormap, str) or self.colormap not in COLORMAPS:
            raise ValueError(f"colormap must be one of {', '.join(sorted(COLORMAPS))}; got {self.colormap!r}")
        mix = self.class_mix
        if not isinstance(mix, dict) or not all(isinstance(k, str) and _is_number(p) for k, p in mix.items()):
            raise ValueError(f"class_mix must map lesion classes to probabilities, got {mix!r}")
        unknown = set(mix) - set(LESION_CLASSES)
        if unknown:
            raise ValueError(f"unknown lesion classes in class_mix: {sorted(unknown)}; known: {', '.join(LESION_CLASSES)}")
        if abs(sum(mix.values()) - 1.0) > 1e-6 or any(p < 0 for p in mix.values()):
            raise ValueError(f"class_mix must be probabilities summing to 1, got {mix}")
        nyquist = 2.0 * self.f0_mhz[1] * (1.0 + self.bandwidth[1] / 2.0)
        if self.sampling_mhz < nyquist:
            raise ValueError(
                f"sampling_mhz {self.sampling_mhz} is below the Nyquist rate {nyquist:g} MHz of the "
                f"highest f0_mhz {self.f0_mhz[1]} with bandwidth {self.bandwidth[1]}"
            )
        wavelengths = 3.0 * self.sound_speed * 1e3 / (self.f0_mhz[0] * 1e6)
        if self.ncc_window_mm < wavelengths:
            raise ValueError(
                f"ncc_window_mm {self.ncc_window_mm} is shorter than 3 wavelengths ({wavelengths:.3g} mm) at the "
                f"lowest f0_mhz {self.f0_mhz[0]}: the cross-correlation needs a few cycles to lock on"
            )
        sample_mm = self.sound_speed * 1e3 / (2.0 * self.sampling_mhz * 1e6)
        if self.ncc_step_mm < sample_mm or self.ncc_step_mm > self.ncc_window_mm:
            raise ValueError(
                f"ncc_step_mm must lie between one RF sample ({sample_mm:.4g} mm) and ncc_window_mm "
                f"({self.ncc_window_mm}), got {self.ncc_step_mm}"
            )

    def to_dict(self) -> dict:
        d = typed_config.to_dict(self)
        if self.simulator == "v1":
            del d["scanner"]  # v1 has no sequence: its recipes stay as they were
        return d

    @classmethod
    def from_dict(cls, d: dict, *, source: str = "simulator settings") -> "SimConfig":
        """Settings from a mapping (a recipe's ``config``), through the project's typed config:
        lists become ``(low, high)`` tuples, and every key and value is checked.

        Raises:
            typed_config.ConfigError: not a mapping, an unknown key, or a value of the wrong
                type or range (the message names the key).
        """
        return typed_config.from_dict(cls, d, source=source)


def _check_number(name: str, value: Any, kind: type) -> None:
    """``value`` is of ``kind`` (``int``, ``float`` or a ``(low, high)`` tuple) within LIMITS."""
    lo, hi = LIMITS[name]
    bounds = f"in [{lo:g}, {hi:g}]"
    if kind is int:
        if not (isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi):
            raise ValueError(f"{name} must be an integer {bounds}, got {value!r}")
    elif kind is float:
        if not (_is_number(value) and lo <= value <= hi):
            raise ValueError(f"{name} must be a number {bounds}, got {value!r}")
    else:  # tuple[float, float]
        if not (isinstance(value, tuple) and len(value) == 2 and all(_is_number(v) for v in value)
                and lo <= value[0] <= value[1] <= hi):
            raise ValueError(f"{name} must be a (low, high) range with low <= high, both {bounds}, got {value!r}")
