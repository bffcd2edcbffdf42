"""``secact.pl.spatial_activity`` and ``secact.pl.velocity`` on the simulated tissue."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import EllipseCollection
from matplotlib.figure import Figure
from matplotlib.quiver import Quiver

import secact


@pytest.fixture(scope="module")
def tissue():
    a = secact.datasets.simulate_spatial(400, seed=2)
    secact.tl.activity(a, "CytoSig", method="analytic", stats=["zscore"], progress=False)
    secact.tl.signaling_velocity(a, "TGFB1", radius=30, sigma=15)
    return a


@pytest.fixture(scope="module")
def with_image(tissue):
    """The tissue with a 200 x 200 px image at scale 0.5 (coordinates in full-resolution pixels)."""
    a = tissue.copy()
    img = np.zeros((200, 200, 3))
    img[..., 0] = np.linspace(0, 1, 200)[None, :]
    a.uns["spatial"] = {"lib": {"images": {"hires": img}, "scalefactors": {"tissue_hires_scalef": 0.5}}}
    return a


@pytest.fixture(autouse=True)
def _no_figures_left():
    yield
    assert plt.get_fignums() == []


def _spots(ax) -> EllipseCollection:
    return next(c for c in ax.collections if isinstance(c, EllipseCollection))


def test_spatial_activity_draws_values_centred(tissue):
    fig, ax = plt.subplots()
    out = secact.pl.spatial_activity(tissue, "IFNG", ax=ax, show=False)
    assert out is ax
    spots = _spots(ax)
    z = tissue.obsm["secact_zscore"]["IFNG"].to_numpy()
    np.testing.assert_allclose(spots.get_array(), z)
    np.testing.assert_allclose(spots.get_offsets(), tissue.obsm["spatial"])
    lo, hi = spots.get_clim()
    assert lo == -hi == -np.abs(z).max()
    assert ax.yaxis_inverted() and ax.get_title() == "IFNG"
    plt.close(fig)


def test_spatial_activity_grid_return_fig_and_save(tissue, tmp_path):
    fig = secact.pl.spatial_activity(tissue, ["IFNG", "TGFB1", "IL6"], ncols=2, vmax=3, return_fig=True)
    assert isinstance(fig, Figure)
    shown = [a for a in fig.axes if a.get_visible() and a.get_title()]
    assert [a.get_title() for a in shown] == ["IFNG", "TGFB1", "IL6"]
    assert all(_spots(a).get_clim() == (-3, 3) for a in shown)
    assert fig not in map(plt.figure, plt.get_fignums())
    path = tmp_path / "act.png"
    assert secact.pl.spatial_activity(tissue, "IL6", save=path, show=False) is not None
    assert path.stat().st_size > 0


def test_spatial_activity_over_image(with_image):
    fig, ax = plt.subplots()
    secact.pl.spatial_activity(with_image, "TGFB1", ax=ax, show=False)
    assert len(ax.images) == 1 and ax.images[0].get_array().shape[:2] == (200, 200)
    # coordinates are scaled onto the image's pixels
    np.testing.assert_allclose(_spots(ax).get_offsets(), with_image.obsm["spatial"] * 0.5)
    plt.close(fig)


def test_velocity_arrows_follow_vectors(tissue):
    fig, ax = plt.subplots()
    secact.pl.velocity(tissue, ax=ax, min_length=0.1, show=False)
    quiver = next(c for c in ax.collections if isinstance(c, Quiver))
    vec = tissue.obsm["secact_velocity"]
    length = np.hypot(*vec.T)
    drawn = length > 0.1 * length.max()
    assert quiver.N == drawn.sum() > 5
    np.testing.assert_allclose(quiver.U, vec[drawn, 0])
    np.testing.assert_allclose(quiver.V, vec[drawn, 1])
    np.testing.assert_allclose(quiver.XY, tissue.obsm["spatial"][drawn])
    assert "TGFB1" in ax.get_title() and "receiving" in ax.get_title()
    np.testing.assert_allclose(_spots(ax).get_array(), tissue.obsm["secact_zscore"]["TGFB1"].to_numpy())
    plt.close(fig)


def test_velocity_colours_and_image(tissue, with_image, tmp_path):
    fig = secact.pl.velocity(tissue, color="cell_type", min_length=0, return_fig=True)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(tissue.obs["cell_type"].cat.categories)
    plt.close(fig)
    # scanpy's stored colours are used, and the legend shows the spots' transparency
    coloured = tissue.copy()
    cats = list(coloured.obs["cell_type"].cat.categories)
    coloured.uns["cell_type_colors"] = ["#ff0000", "#00ff00", "#0000ff", "#ffff00", "#00ffff"][: len(cats)]
    fig = secact.pl.velocity(coloured, color="cell_type", alpha=0.4, min_length=0, return_fig=True)
    handles = fig.axes[0].get_legend().legend_handles
    assert [mpl.colors.to_hex(h.get_color()) for h in handles] == coloured.uns["cell_type_colors"]
    assert all(h.get_alpha() == 0.4 for h in handles)
    plt.close(fig)
    fig = secact.pl.velocity(with_image, color=None, min_length=0.1, return_fig=True)
    ax = fig.axes[0]
    quiver = next(c for c in ax.collections if isinstance(c, Quiver))
    vec = with_image.obsm["secact_velocity"]
    drawn = np.hypot(*vec.T) > 0.1 * np.hypot(*vec.T).max()
    np.testing.assert_allclose(quiver.XY, with_image.obsm["spatial"][drawn] * 0.5)
    np.testing.assert_allclose(quiver.U, vec[drawn, 0] * 0.5)
    assert len(ax.images) == 1
    secact.pl.velocity(tissue, save=tmp_path / "v.png", show=False)
    assert (tmp_path / "v.png").stat().st_size > 0


def test_errors(tissue):
    with pytest.raises(KeyError, match="not in the activity run"):
        secact.pl.spatial_activity(tissue, "NOPE", show=False)
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="one panel"):
        secact.pl.spatial_activity(tissue, ["IFNG", "IL6"], ax=ax)
    plt.close(fig)
    with pytest.raises(KeyError, match="signaling_velocity"):
        secact.pl.velocity(tissue, "other_key")
    with pytest.raises(KeyError, match="neither"):
        secact.pl.velocity(tissue, color="nope")
    bare = tissue.copy()
    del bare.obsm["spatial"]
    with pytest.raises(KeyError, match="coordinates"):
        secact.pl.spatial_activity(bare, "IFNG")
