"""GFK: the closed-form kernel equals the integral over the geodesic, computed naively."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from transferkit.errors import TransferkitError
from transferkit.shallow.gfk import GFK, geodesic_flow_map


def _bases(D=7, d=2, seed=0):
    Q = ortho_group.rvs(D, random_state=seed)
    Ps = Q[:, :d]
    Pt = np.linalg.qr(Ps + 0.8 * Q[:, d : 2 * d] + 0.3 * Q[:, 2 * d : 3 * d])[0]
    return Ps, Pt


def _naive_gfk(Ps, Pt, steps=4000):
    """Midpoint rule over the geodesic of Edelman, Arias and Smith (1998), a construction independent
    of the paper's: (I - Ps Ps^T) Pt (Ps^T Pt)^{-1} = U tan(Theta) V^T and
    Phi(t) = Ps V cos(t Theta) + U sin(t Theta)."""
    U, tan, Vt = np.linalg.svd((Pt - Ps @ (Ps.T @ Pt)) @ np.linalg.inv(Ps.T @ Pt), full_matrices=False)
    theta = np.arctan(tan)
    G = np.zeros((len(Ps), len(Ps)))
    for t in (np.arange(steps) + 0.5) / steps:
        Phi = Ps @ Vt.T @ np.diag(np.cos(t * theta)) + U @ np.diag(np.sin(t * theta))
        G += Phi @ Phi.T / steps
    end = Ps @ Vt.T @ np.diag(np.cos(theta)) + U @ np.diag(np.sin(theta))
    assert np.allclose(end @ end.T, Pt @ Pt.T)  # the reference geodesic does end at the target subspace
    return G


def test_closed_form_matches_the_integral_over_the_geodesic():
    Ps, Pt = _bases()
    R = geodesic_flow_map(Ps, Pt)
    assert R.shape == (7, 4)
    np.testing.assert_allclose(R @ R.T, _naive_gfk(Ps, Pt), atol=1e-6)


def test_kernel_depends_on_the_subspaces_only():
    Ps, Pt = _bases(seed=3)
    G = (lambda R: R @ R.T)(geodesic_flow_map(Ps, Pt))
    rot = ortho_group.rvs(2, random_state=1)
    flip = np.diag([1.0, -1.0])
    G2 = (lambda R: R @ R.T)(geodesic_flow_map(Ps @ rot, Pt @ flip))
    np.testing.assert_allclose(G, G2, atol=1e-10)
    # the same subspace on both sides: no flow, G is the projector onto it
    np.testing.assert_allclose((lambda R: R @ R.T)(geodesic_flow_map(Ps, Ps @ rot)), Ps @ Ps.T, atol=1e-10)


def test_adapter_maps_every_row_and_clips_the_dimension():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5))
    sd = np.r_[np.zeros(30, int), -np.ones(30, int)]
    gfk = GFK(n_components=50).fit(X, None, sd)
    assert gfk.n_components_ == 5 and gfk.transform(X, sd).shape == (60, 10)
    # the map ignores the domain: the kernel is one inner product for all rows
    np.testing.assert_allclose(gfk.transform(X[:5], np.full(5, -1)), X[:5] @ gfk.map_)
    with pytest.raises(TransferkitError, match="n_components"):
        GFK(n_components=0).fit(X, None, sd)
