"""Image comparisons of the main plots against baselines in tests/pl/baseline.

Regenerate (after an intended change; look at every image before committing):
``SECACT_UPDATE_BASELINES=1 pytest tests/pl/test_images.py``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from matplotlib.testing.compare import compare_images

import secact

BASELINE = Path(__file__).parent / "baseline"
TOL = 6.0  # RMS over 0-255 pixel values: text rendering may differ slightly between versions

CASES = {
    "heatmap": lambda a, **kw: secact.pl.heatmap(a, top=3, figsize=(7.0, 3.2), **kw),
    "bar": lambda a, **kw: secact.pl.bar(a, "IFNG_stimulated", top=6, figsize=(3.6, 3.6), **kw),
    "lollipop": lambda a, **kw: secact.pl.lollipop(a, "IL4_stimulated", top=6, figsize=(3.6, 3.6), **kw),
    "dotplot": lambda a, **kw: secact.pl.dotplot(a, "group", top=2, figsize=(6.0, 3.6), **kw),
    "volcano": lambda a, **kw: secact.pl.volcano(a, "IFNG_stimulated", top=6, figsize=(6.0, 4.0), **kw),
    "rank_activities": lambda a, **kw: secact.pl.rank_activities(a, top=5, panel_size=(2.8, 2.4), **kw),
}


@pytest.mark.parametrize("name", CASES)
def test_matches_baseline(results, name, tmp_path):
    actual = tmp_path / f"{name}.png"
    with plt.style.context("default"), plt.rc_context({"figure.dpi": 80}):
        CASES[name](results, save=actual, show=False)
    expected = BASELINE / f"{name}.png"
    if os.environ.get("SECACT_UPDATE_BASELINES"):
        BASELINE.mkdir(exist_ok=True)
        shutil.copyfile(actual, expected)
    assert expected.exists(), f"no baseline {expected}; create it with SECACT_UPDATE_BASELINES=1"
    diff = compare_images(str(expected), str(actual), tol=TOL)
    assert diff is None, diff
