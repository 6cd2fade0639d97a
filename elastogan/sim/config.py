"""Typed settings of the phantom simulator. Every number the physics uses lives here."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass(frozen=True)
class SimConfig:
    """Simulator settings (DESIGN §3). Ranges are ``(low, high)`` drawn uniformly per case.

    Args:
        size: output frame, ``size × size`` pixels (B-mode, E-mode, strain).
        field_mm: lateral and axial extent of the imaged tissue.
        fem_elements: FEM elements per side (Q1, selective reduced integration).
        property_factor: tissue property grid = ``fem_elements · property_factor`` per side.
        scatterers_per_mm2: point scatterer density (≥ ~10 per resolution cell for fully
            developed speckle).
        sound_speed: m/s.
        sampling_mhz: RF sampling rate of the baseband grid.
        f0_mhz: transmit centre frequency range.
        bandwidth: fractional −6 dB bandwidth range.
        lateral_sigma_mm: lateral PSF σ at the focus and at the field's far edge.
        snr_db: echo signal-to-noise ratio range (electronic noise, independent per frame).
        dynamic_range_db: log-compression range.
        applied_strain: axial compression range (fraction).
        nu: Poisson's ratio.
        ncc_window_mm, ncc_step_mm: cross-correlation window and step along each line.
        lsq_points: displacement estimates per least-squares strain fit.
        alpha: E-mode colour opacity range.
        colormap: display map of the simulated scanner.
        class_mix: probabilities of cyst, fibroadenoma, carcinoma.
    """

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

    def __post_init__(self) -> None:
        if self.size < 32 or self.size % 8:
            raise ValueError(f"size must be a multiple of 8 and at least 32, got {self.size}")
        if self.fem_elements < 16:
            raise ValueError(f"fem_elements must be at least 16, got {self.fem_elements}")
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, tuple) and not (len(v) == 2 and v[0] <= v[1]):
                raise ValueError(f"{f.name} must be a (low, high) range, got {v}")
        total = sum(self.class_mix.values())
        if abs(total - 1.0) > 1e-6 or any(p < 0 for p in self.class_mix.values()):
            raise ValueError(f"class_mix must be probabilities summing to 1, got {self.class_mix}")
        unknown = set(self.class_mix) - {"cyst", "fibroadenoma", "carcinoma"}
        if unknown:
            raise ValueError(f"unknown lesion classes in class_mix: {sorted(unknown)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SimConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown simulator settings: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
