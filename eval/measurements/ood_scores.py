"""The OOD figure of ``docs/preview_trust.md``: a checkpoint's out-of-distribution scores by
source — the phantom splits it never trained on, and every real ultrasound file pydicom and
pydicom-data ship — against its threshold.

Run (after ``elastogan fingerprint``)::

    python -m elastogan.eval.measurements.ood_scores --checkpoint CKPT --data MANIFEST --out docs/ood_scores.png

It prints one line per source (cases, share in distribution, score range) and writes the PNG.
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_W, _ROW, _TOP, _BOTTOM, _LEFT, _RIGHT = 900, 22, 40, 60, 260, 30


def strip_png(groups: Sequence[tuple[str, Sequence[float]]], threshold: float, *, title: str = "") -> bytes:
    """PNG bytes: one row of dots per ``(label, scores)``, log-scaled x, the threshold dashed.

    Dots above the threshold are orange (flagged), the others blue.
    """
    if not groups or threshold <= 0 or any(len(s) == 0 for _, s in groups):
        raise ValueError("expected at least one group, each with scores, and a positive threshold")
    values = np.concatenate([np.asarray(s, dtype=np.float64) for _, s in groups])
    if not (np.isfinite(values).all() and values.min() > 0):
        raise ValueError("scores must be positive and finite for a log scale")
    lo = 10 ** math.floor(math.log10(min(values.min(), threshold)))
    hi = 10 ** math.ceil(math.log10(max(values.max(), threshold)))
    h = _TOP + _ROW * len(groups) + _BOTTOM
    img = Image.new("RGB", (_W, h), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    x0, x1, y1 = _LEFT, _W - _RIGHT, h - _BOTTOM

    def px(v: float) -> float:
        return x0 + (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * (x1 - x0)

    for i, (label, scores) in enumerate(groups):
        y = _TOP + _ROW * i + _ROW / 2
        draw.line([x0, y, x1, y], fill=(235, 235, 235))
        draw.text((8, y - 6), label, fill="black", font=font)
        for v in scores:
            colour = (213, 94, 0) if v > threshold else (0, 114, 178)
            draw.ellipse([px(v) - 3, y - 3, px(v) + 3, y + 3], outline=colour, width=1)
    draw.line([x0, y1, x1, y1], fill="black")
    for k in range(int(math.log10(lo)), int(math.log10(hi)) + 1):
        draw.line([px(10**k), y1, px(10**k), y1 + 4], fill="black")
        draw.text((px(10**k) - 8, y1 + 8), f"{10**k:g}", fill="black", font=font)
    for k in range(0, int(y1 - _TOP), 8):
        draw.line([px(threshold), _TOP + k, px(threshold), min(_TOP + k + 4, y1)], fill=(213, 94, 0), width=2)
    draw.text((px(threshold) + 4, _TOP - 14), f"threshold {threshold:.1f}", fill=(213, 94, 0), font=font)
    draw.text((x0 + (x1 - x0) // 2 - 120, y1 + 28), "OOD score (Mahalanobis distance, log scale)", fill="black", font=font)
    draw.text((8, 8), title, fill="black", font=font)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def pydicom_ultrasound_files() -> list[Path]:
    """Every ultrasound (Modality US) file among pydicom's and pydicom-data's test files, by name."""
    import importlib.metadata

    import pydicom
    import pydicom.data

    roots = [Path(pydicom.data.__file__).parent]
    roots += [Path(str(f.locate())).parent for f in importlib.metadata.files("pydicom-data") or [] if f.name == "__init__.py"]
    found = []
    for f in sorted({p for r in roots for p in r.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc", ".json")}):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pydicom warns about odd VRs in its own test files
                ds = pydicom.dcmread(f, stop_before_pixels=True)
        except Exception:  # not DICOM (charset tables, palettes, READMEs)
            continue
        if ds.get("Modality") == "US":
            found.append(f)
    return sorted(found, key=lambda p: p.name)


def main(argv: Sequence[str] | None = None) -> int:
    from elastogan.bmode_input import load_bmode, read_bmode_input
    from elastogan.data.manifest import read_manifest
    from elastogan.errors import InputFileError, UserError
    from elastogan.ood import image_features
    from elastogan.predict import Predictor

    ap = argparse.ArgumentParser(prog="python -m elastogan.eval.measurements.ood_scores", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=Path, required=True, help="a checkpoint with a fingerprint (elastogan fingerprint)")
    ap.add_argument("--data", type=Path, required=True, help="the manifest it was trained on (val and test splits are scored)")
    ap.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = ap.parse_args(argv)
    try:
        p = Predictor.from_checkpoint(args.checkpoint, device="cpu")
        if p.fingerprint is None:
            raise InputFileError(args.checkpoint, "no OOD fingerprint (run elastogan fingerprint first)")
        m = read_manifest(args.data)
        groups: list[tuple[str, list[float]]] = []
        for split in ("val", "test"):
            cases = m.split(split)
            if cases:
                scores = p.fingerprint.scores(image_features(p, [load_bmode(c.bmode) for c in cases]))
                groups.append((f"phantom {split} (n={len(cases)})", scores.tolist()))
        for f in pydicom_ultrasound_files():
            try:
                b = read_bmode_input(f).bmode
            except InputFileError as e:
                print(f"{f.name}: not scored ({e.problem})")
                continue
            groups.append((f.name, [p.ood_score(b)["score"]]))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    thr = p.fingerprint.threshold
    for label, scores in groups:
        s = np.asarray(scores)
        print(f"{label}: {np.mean(s <= thr):.1%} in distribution; score {s.min():.1f}–{s.max():.1f} (threshold {thr:.1f})")
    title = f"{args.checkpoint.name} (step {p.step}): fingerprint of {p.fingerprint.train_cases} train cases, threshold = 99th pct of val"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(strip_png(groups, thr, title=title))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
