"""Voxel-wise fitting of Tofts, extended Tofts and Patlak over whole volumes.

Linear least squares (Murase, MRM 51:858, 2004): integrating the Tofts
equation ``dC/dt = Ktrans Cp - kep C`` gives, at every frame time,

    C(t) = Ktrans int_0^t Cp - kep int_0^t C            (Tofts)
    C(t) = (Ktrans + kep vp) int Cp - kep int C + vp Cp  (extended Tofts)
    C(t) = Ktrans int_0^t Cp + vp Cp                      (Patlak)

which is linear in the parameters; each voxel's 2x2 or 3x3 normal
equations are solved in closed form / batched, for all voxels at once.
``int Cp`` is exact (fine grid), ``int C`` uses the trapezoidal rule. The
linear parameters are then re-solved exactly for the model at the
linear-estimate kep (``E(kep)`` from a spline look-up table).

Grid search (``search=True``, the default): the linearisation is biased
where kep is high (the tissue curve follows the AIF closely, small ve). For
voxels with a linear kep above 1/min, the exact model is also solved on a
coarse grid of ln(kep) (one matrix product for all of them; linear
parameters in closed form at each grid point), refined by a parabola, and
the better fit of the two is kept.

Polish (``polish=True``, the default, Tofts only): Gauss-Newton on ln(kep)
with Ktrans eliminated (variable projection), from the better of the linear
and grid estimates, batched over voxels with a shrinking active set; every
quantity comes from the dense look-up table (two gathered row products per
voxel and step), so it costs about as much as the linear fit and reaches the
least-squares minimum of the exact model in a few steps.

The default Tofts fit (``search=True, polish=True``) does both for every
voxel in the reduced basis of the model curves (:meth:`ConvTable.reduced`,
13 orthonormal vectors for 60 frames, in which every normalised ``E(kep)``
of the whole kep range is exact to 2e-5): one ``(N, T) x (T, r + 1)`` matrix
product ``z = C @ [basis | 1]``, in the data's own precision (float32 images
stay float32), and ``C.C`` are the only passes over the data. In that basis
the grid search is the argmax of ``z`` against 32 normalised grid curves (a
second, small matrix product), refined by a parabola; one Gauss-Newton step on
ln(kep) (variable projection, as the polish) follows, kept only where it
lowers the SSE, and the SSE is exact at the point kept (a point of the dense
table, 1.2e-3 apart in ln kep). Where kep > 20/min the SSE valley in ln(kep)
is flat (the tissue curve follows the AIF) and one step does not settle it:
there a second search on 96 points of ln(kep) from 10/min to the upper bound
and its parabola settle it, at the nearest dense point. Voxels above
``ve_max`` are fitted on the bound ``Ktrans = ve_max kep`` (Gauss-Newton in
ln kep, three evaluations). Everything after the two matrix products is a
compiled loop per voxel (numba, :mod:`._tofts_kernel`: each step one loop over
a block of 8192 rows, no temporaries; compiled on the first call on a machine,
about 5 s per dtype on the busy 2-core machine, then loaded from numba's
cache), one chunk of blocks per core in threads (the loops release the GIL).
It reaches the least-squares minimum of the exact model (within 1e-3 of
scipy's bounded fit's SSE for 95% of voxels, tests/test_timeseries.py)
without the linearisation as a start. Measured on the shared 2-core machine
while it was busy (load 2-3; the fastest of 20 interleaved rounds, one
thread, CPU time): ``fit_kinetics`` on the 64x64x16 volume of bench_dce.py takes about 11 ms
with 60 frames and with 30 (the former numpy steps: 17 ms), where the
closed-form linear fit in numpy (its blocked float32 form) takes 11 ms and
5 ms: level with 60 frames, 0.4x with 30, since that fit's one product
shrinks with the frames and the per-voxel steps here do not. The chunk
threads halve the wall time where both cores are free: on the idle machine
(bench_dce.py, 5 rounds) the default fit ran 5.5M voxels/s with 60 frames, 1.31x
the faster setting of that closed-form fit (0.72x its CPU time), and 6.0M voxels/s
with 30 frames (0.67x; 0.50x its CPU time), at the accuracy given there.

Non-linear refinement (``refine=True``): Levenberg-Marquardt on
``(Ktrans, ln kep[, vp])``, batched over voxels in numpy, with the model
and its derivative from the look-up table of the exact convolution, bounds
by projection (``Ktrans >= 0``, kep in ``kep_range``, ``ve <= ve_max``,
``0 <= vp <= 1``).

Delay: ``delays_s`` tries each AIF delay for every voxel and keeps the one
with the smallest residual (a map ``delay_s``).
"""

from __future__ import annotations

import functools
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
import numpy.typing as npt

from .._optional import import_optional
from ..image import Image
from ._aif import AIF
from ._common import TimeSeriesError, require_series, spatial_mask
from ._kinetics import KEP_RANGE, FineGrid, conv_table

__all__ = ["fit_curves", "fit_kinetics"]

Model = Literal["tofts", "extended_tofts", "patlak"]
MODELS = ("tofts", "extended_tofts", "patlak")
_CHUNK = 8192
#: rows per block of the default Tofts fit (its temporaries stay in cache)
_BLOCK = 8192
_MAX_THREADS = 8
#: kep (/min) above which the linear estimate is checked by a grid search
_SEARCH_KEP = 1.0
#: Gauss-Newton steps of the default polish (Tofts)
_POLISH_ITER = 8
#: largest step in ln(kep) and the step below which a voxel has converged
_POLISH_STEP = 4.0
_POLISH_TOL = 1e-4

#: parameter names per model, and the units of every output
PARAMETERS = {"tofts": ("ktrans", "ve", "kep"), "extended_tofts": ("ktrans", "ve", "kep", "vp"),
              "patlak": ("ktrans", "vp")}
UNITS = {"ktrans": "/min", "kep": "/min", "ve": "1", "vp": "1", "r2": "1", "rmse": "mM",
         "delay_s": "s"}


class _Setup:
    """Grid, look-up table and frame-time quantities for one AIF delay."""

    def __init__(self, times_s: np.ndarray, aif: AIF, *, model: str, step_s: float,
                 kep_range: tuple[float, float]) -> None:
        self.grid = FineGrid(times_s, aif, step_s=step_s)
        self.t = times_s / 60.0
        self.cp = self.grid.cp_frames
        self.table = conv_table(self.grid, kep_range=kep_range) if model != "patlak" else None

    @functools.cached_property
    def a(self) -> np.ndarray:
        """``int_0^t Cp`` at the frame times (the linear fits'; the default fit needs none)."""
        return self.grid.integral()


_SETUPS: OrderedDict[tuple, tuple[weakref.ref, _Setup]] = OrderedDict()
_SETUPS_SIZE = 8
_SETUPS_LOCK = threading.Lock()


def _setup(times_s: np.ndarray, aif: AIF, delay_s: float, *, model: str, step_s: float,
           kep_range: tuple[float, float]) -> _Setup:
    """The :class:`_Setup` of ``aif`` delayed by ``delay_s``, reused while the same AIF
    object (with the same samples) fits the same frame times (building one costs more
    than fitting a small volume)."""
    key = (id(aif), aif.function, aif.delay_s, float(delay_s), model, float(step_s),
           tuple(map(float, kep_range)), times_s.tobytes(),
           *(np.asarray(a, dtype=float).tobytes()
             for a in (aif.times_s, aif.values, aif.breakpoints_s) if a is not None))
    with _SETUPS_LOCK:
        hit = _SETUPS.get(key)
        if hit is not None and hit[0]() is aif:
            _SETUPS.move_to_end(key)
            return hit[1]
    s = _Setup(times_s, aif.delayed(delay_s), model=model, step_s=step_s, kep_range=kep_range)
    with _SETUPS_LOCK:
        _SETUPS[key] = (weakref.ref(aif), s)
        while len(_SETUPS) > _SETUPS_SIZE:
            _SETUPS.popitem(last=False)
    return s


def _dot(rows: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """Row-wise dot products without BLAS (whose threads contend on small products)."""
    return np.einsum("nt,t->n", rows, vector)


def _cumtrapz(c: np.ndarray, t: np.ndarray) -> np.ndarray:
    """int_0^t C at the frame times (a linear ramp from 0 at t = 0 to the first frame)."""
    out = np.empty_like(c)
    tmp = c[:, 1:] + c[:, :-1]
    tmp *= np.diff(t) / 2
    tmp[:, 0] += c[:, 0] * (t[0] / 2)
    np.cumsum(tmp, axis=1, out=out[:, 1:])
    out[:, 0] = c[:, 0] * (t[0] / 2)
    return out


def _linear(c: np.ndarray, s: _Setup, model: str) -> dict[str, np.ndarray]:
    """Murase linear least squares for every row of ``c`` (N, T)."""
    a, cp = s.a, s.cp
    if model == "patlak":
        x = np.stack([a, cp], axis=1)
        pinv = np.linalg.pinv(x)
        p = np.stack([_dot(c, pinv[0]), _dot(c, pinv[1])], axis=1)
        return {"ktrans": p[:, 0], "vp": p[:, 1]}
    b = _cumtrapz(c, s.t)
    aa, ab, bb = a @ a, _dot(b, a), np.einsum("nt,nt->n", b, b)
    ac, bc = _dot(c, a), np.einsum("nt,nt->n", b, c)
    if model == "tofts":
        with np.errstate(divide="ignore", invalid="ignore"):
            det = aa * bb - ab**2
            kt = (ac * bb - ab * bc) / det
            kep = (ab * ac - aa * bc) / det
        return {"ktrans": kt, "kep": kep}
    m = np.empty((c.shape[0], 3, 3))
    m[:, 0, 0], m[:, 0, 1], m[:, 0, 2] = aa, -ab, a @ cp
    m[:, 1, 1], m[:, 1, 2], m[:, 2, 2] = bb, -_dot(b, cp), cp @ cp
    m[:, 1, 0], m[:, 2, 0], m[:, 2, 1] = m[:, 0, 1], m[:, 0, 2], m[:, 1, 2]
    rhs = np.stack([ac, -bc, _dot(c, cp)], axis=1)
    ok = np.abs(np.linalg.det(m)) > 0
    sol = np.full((c.shape[0], 3), np.nan)
    sol[ok] = np.linalg.solve(m[ok], rhs[ok][..., None])[..., 0]
    kep, vp = sol[:, 1], sol[:, 2]
    return {"ktrans": sol[:, 0] - kep * vp, "kep": kep, "vp": vp}


def _project(c: np.ndarray, s: _Setup, model: str, p: dict[str, np.ndarray],
             ve_max: float | None, cc: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Clip kep into bounds, re-solve the linear parameters at that kep; return SSE too.

    ``cc`` is each row's ``C.C``; the SSE is expanded in inner products so no
    model curve is formed.
    """
    cpcp = s.cp @ s.cp
    ccp = _dot(c, s.cp) if model != "tofts" else np.zeros(c.shape[0])
    if model == "patlak":
        kt, vp = np.maximum(p["ktrans"], 0.0), np.clip(p["vp"], 0.0, 1.0)
        ca, aa, acp = _dot(c, s.a), s.a @ s.a, s.a @ s.cp
        sse = cc - 2 * (kt * ca + vp * ccp) + kt**2 * aa + 2 * kt * vp * acp + vp**2 * cpcp
        return {"ktrans": kt, "vp": vp}, np.maximum(sse, 0.0)
    assert s.table is not None
    lo, hi = s.table.bounds
    kep = p["kep"]
    u = np.where(np.isfinite(kep) & (kep > 0), np.log(np.where(kep > 0, kep, 1.0)), hi)
    u = np.clip(u, lo, hi)

    def solve(u: np.ndarray, rows: np.ndarray | slice) -> tuple[np.ndarray, ...]:
        ee, ec, ecp = s.table.products(u, c[rows])
        if model == "tofts":
            kt = np.maximum(ec / ee, 0.0)
            return kt, np.zeros_like(kt), ee, ec, ecp
        det = ee * cpcp - ecp**2
        with np.errstate(divide="ignore", invalid="ignore"):
            kt = (ec * cpcp - ecp * ccp[rows]) / det
            vp = (ee * ccp[rows] - ecp * ec) / det
        kt = np.where(np.isfinite(kt), kt, 0.0)
        vp = np.where(np.isfinite(vp), vp, 0.0)
        # outside the box: clip one parameter and re-solve the other
        vp_c = np.clip(vp, 0.0, 1.0)
        kt = np.where(vp_c != vp, (ec - vp_c * ecp) / ee, kt)
        neg = kt < 0
        vp = np.where(neg, np.clip(ccp[rows] / cpcp, 0.0, 1.0), vp_c)
        return np.maximum(kt, 0.0), vp, ee, ec, ecp

    kt, vp, ee, ec, ecp = solve(u, slice(None))
    if ve_max is not None:
        # ve = kt / kep <= ve_max  <=>  u >= ln(kt / ve_max)
        need = np.flatnonzero(kt > ve_max * np.exp(u))
        if need.size:
            u[need] = np.clip(np.log(kt[need] / ve_max), lo, hi)
            sub = solve(u[need], need)
            kt[need] = np.minimum(sub[0], ve_max * np.exp(u[need]))
            vp[need], ee[need], ec[need], ecp[need] = sub[1:]
    sse = cc - 2 * (kt * ec + vp * ccp) + kt**2 * ee + 2 * kt * vp * ecp + vp**2 * cpcp
    return {"ktrans": kt, "kep": np.exp(u), "vp": vp}, np.maximum(sse, 0.0)


def _grid_search(c: np.ndarray, ec: np.ndarray, s: _Setup, model: str, cc: np.ndarray,
                 ve_max: float | None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Least squares over a coarse grid of ln(kep) (linear parameters solved exactly at
    each), refined by a parabola through the best grid point and its neighbours.

    ``ec`` is ``c @ E_grid.T`` (one matrix product, made by the caller).
    Works with the SSE reduction ``score = cc - SSE`` of each grid point: for
    Tofts ``(E.C)^2 / E.E`` (where ``E.C > 0``); for extended Tofts the
    projection on ``[E, Cp]``. Bounds are enforced afterwards by :func:`_project`.
    """
    assert s.table is not None
    grid_u = s.table.coarse[1]
    if model == "tofts":
        score = np.maximum(ec, 0.0)
        score *= score
        score *= 1.0 / s.table.coarse_ee
    else:
        ee, ecp = s.table.coarse_ee, s.table.coarse_ecp
        cpcp = s.cp @ s.cp
        ccp = _dot(c, s.cp)[:, None]
        inv_det = 1.0 / (ee * cpcp - ecp**2)
        # score = [ec, ccp] M^-1 [ec, ccp]^T with M = [[ee, ecp], [ecp, cpcp]]
        score = (ec * ec) * (cpcp * inv_det)
        score -= ec * ccp * (2 * ecp * inv_det)
        score += (ccp * ccp) * (ee * inv_det)
    u = _best_on_grid(score, grid_u)
    return _project(c, s, model, {"kep": np.exp(u), "ktrans": np.zeros_like(u)}, ve_max, cc)


def _best_on_grid(score: np.ndarray, grid_u: np.ndarray) -> np.ndarray:
    """ln(kep) of each row's best grid score, refined by a parabola through its neighbours."""
    m = np.clip(np.argmax(score, axis=1), 1, grid_u.size - 2)
    rows = np.arange(score.shape[0])
    step = grid_u[1] - grid_u[0]
    return _vertex(grid_u[m], step, score[rows, m - 1], score[rows, m], score[rows, m + 1])


def _fast_tofts(c: np.ndarray, tab, ve_max: float | None, out: tuple[np.ndarray, ...]) -> None:
    """The default Tofts fit of the rows of ``c`` (one chunk, float32 or float64).

    In blocks of ``_BLOCK`` rows:

    1. ``z = C @ [basis | 1]`` (one BLAS product: the only pass over the data besides
       ``C.C``, which a compiled loop sums); every later step works on the r-vectors.
    2. The grid scores ``E.C / |E|`` of ln(kep), ``x = z @ search_unit`` (a second,
       small BLAS product).
    3. The compiled steps (:func:`._tofts_kernel.fit_block`): the argmax of each row's
       scores refined by a parabola through the neighbours; one Gauss-Newton step on
       ln(kep) with Ktrans eliminated (variable projection, as :func:`_polish`), kept
       only where it lowers the SSE, which is evaluated exactly at the point kept (a
       point of the dense table, where ``E`` is exact); for the rows whose kep is
       above 20/min, where the SSE valley is flat and one step does not settle it
       (issue 6), a second search on the points of ln(kep) from kep 10/min to the
       upper bound, its parabola and the SSE at the nearest dense point, kept where
       it is lower; above ``ve_max``, the fit on the bound ``Ktrans = ve_max kep``
       (Gauss-Newton on ln kep, three evaluations) from kep = Ktrans / ve_max.

    Writes ``ktrans``, ``kep``, the SSE, each row's ``C.C`` and sum (float64) into
    ``out``; a row that is not finite has a sum that is not finite, and is fitted
    as zeros.
    """
    # numba is a dependency of medlab (pyproject): a broken or missing install says what to do
    import_optional("numba", feature="The default Tofts fit (its compiled per-voxel steps)",
                    extra=None, hint=" -- or fit with refine=True or search=False, which do "
                    "not need it")
    from ._tofts_kernel import fit_block, sum_squares

    kt, kep, sse, cc, row_sum = out
    n = c.shape[0]
    dt = c.dtype
    r = tab.basis.shape[1]
    project, search_unit = tab.project[dt], tab.search_unit[dt]
    m = min(n, _BLOCK)
    z = np.empty((m, project.shape[1]), dtype=dt)
    x = np.empty((m, search_unit.shape[1]), dtype=dt)
    xf = np.empty((1, tab.flat_j.size), dtype=dt)
    j_buf, bound, trial = (np.empty(m, dtype=np.intp) for _ in range(3))
    args = ((tab.search_u[1] - tab.search_u[0]) / tab.step_dense, tab.pair[dt], tab.ee_rows,
            tab.ee_pair, tab.kep_dense, tab.flat_from, tab.flat_j, tab.flat_unit[dt],
            tab.step_dense, _POLISH_STEP / tab.step_dense,
            -1.0 if ve_max is None else float(ve_max))
    for i in range(0, n, _BLOCK):
        b = slice(i, min(i + _BLOCK, n))
        nb = b.stop - b.start
        np.matmul(c[b], project, out=z[:nb])
        np.matmul(z[:nb, :r], search_unit[:r], out=x[:nb])
        row_sum[b] = z[:nb, r]
        sum_squares(c[b], cc[b])
        fit_block(z[:nb], x[:nb], r, cc[b], *args, kt[b], kep[b], sse[b], xf, j_buf[:nb], bound, trial)
    np.subtract(cc, sse, out=sse)
    np.maximum(sse, 0.0, out=sse)


def _vertex(u: np.ndarray, step: float, s0: np.ndarray, s1: np.ndarray, s2: np.ndarray
            ) -> np.ndarray:
    """Maximum of the parabola through scores at ``u - step, u, u + step`` (within them)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        curv = 2 * s1 - s0 - s2
        shift = np.where(curv > 0, 0.5 * (s2 - s0) / curv, 0.0)
    return u + np.clip(np.nan_to_num(shift), -1.0, 1.0) * step


def _polish(c: np.ndarray, s: _Setup, p: dict[str, np.ndarray], sse: np.ndarray,
            cc: np.ndarray, ve_max: float | None, max_iter: int
            ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Gauss-Newton on ln(kep) of the Tofts model with Ktrans eliminated.

    Variable projection (Golub & Pereyra 1973, with Kaufman's Jacobian): at
    ``u = ln kep`` the best Ktrans is ``g / h`` with ``g = E.C`` and
    ``h = E.E``, and the step is ``du = E'.r / (Ktrans (E'.E' - (E.E')^2 / h))``
    with ``r = C - Ktrans E``. ``E`` is the dense linear-interpolation table,
    ``E'`` its slope on the interval, and ``E.E``, ``E.E'``, ``E'.E'`` are
    precomputed, so a step costs two gathered row products per voxel (no model
    curve is formed). A step that does not lower the SSE is halved; a voxel
    stops when its step is below ``_POLISH_TOL``. Ktrans and the SSE are those
    of the last accepted step; voxels outside the ve bound (or never evaluated)
    are projected into the bounds by :func:`_project`. The result is kept only
    where it fits better than ``p``.
    """
    assert s.table is not None
    tab = s.table
    lo, hi = tab.bounds
    step_u = tab.step_dense
    u = np.log(p["kep"])
    active = np.flatnonzero(p["ktrans"] > 0)
    ua = u[active]
    cur = np.full(active.size, np.inf)
    delta = np.zeros(active.size)
    ee0, ee1, ee2 = tab.ee
    pair = getattr(tab, "pair", None)
    kt_fit = np.zeros(u.size)
    sse_fit = np.full(u.size, np.inf)
    for _ in range(max_iter + 1):
        if active.size == 0:
            break
        ca = c[active]
        trial = np.clip(ua + delta, lo, hi)
        pos = (trial - lo) * (1.0 / step_u)
        j = np.minimum(pos.astype(np.intp), tab.u_dense.size - 2)
        w = pos - j
        if pair is not None:  # one gather of [E | E'] rows
            gg = np.einsum("nkt,nt->kn", pair[j], ca)
            g, g1 = gg[0], gg[1]
        else:
            g1 = np.einsum("nt,nt->n", tab.diff_dense[j], ca)
            g = np.einsum("nt,nt->n", tab.e_dense[j], ca)
        g += w * g1
        e1, e2 = ee1[j], ee2[j]
        h = ee0[j] + w * (e1 + w * e2)
        kt = np.maximum(g, 0.0) / h
        e_trial = cc[active] - kt * g  # SSE at the best Ktrans
        ok = e_trial < cur
        ua[ok] = trial[ok]
        cur[ok] = e_trial[ok]
        kt_fit[active[ok]] = kt[ok]
        sse_fit[active[ok]] = e_trial[ok]
        # E' = diff / step on the interval: 2 E.E' and E'.E' from the table
        hp = e1 + 2 * w * e2
        denom = kt * (e2 - 0.25 * hp * hp / h)
        num = g1 - 0.5 * kt * hp
        good = denom > 0
        du = np.zeros_like(num)
        np.divide(num, denom, out=du, where=good)
        du *= step_u
        np.clip(du, -_POLISH_STEP, _POLISH_STEP, out=du)
        delta = np.where(ok, du, 0.5 * delta)
        # at a bound of kep with the step pointing out of the range: the bound is the optimum
        delta[((ua <= lo) & (delta < 0)) | ((ua >= hi) & (delta > 0))] = 0.0
        keep = np.abs(delta) > _POLISH_TOL
        u[active] = ua
        if not keep.all():
            active, ua, cur, delta = active[keep], ua[keep], cur[keep], delta[keep]
    kep = np.exp(u)
    q, e = {"ktrans": kt_fit, "kep": kep, "vp": np.zeros(u.size)}, sse_fit
    # not evaluated, or outside the ve bound: the projection into the bounds
    redo = ~np.isfinite(sse_fit)
    if ve_max is not None:
        redo |= kt_fit > ve_max * kep
    redo = np.flatnonzero(redo)
    if redo.size:
        qr, er = _project(c[redo], s, "tofts", {"kep": kep[redo], "ktrans": p["ktrans"][redo]},
                          ve_max, cc[redo])
        for k, v in qr.items():
            q[k][redo] = v
        e[redo] = er
    win = e < sse
    return {k: np.where(win, q[k], p[k]) for k in p}, np.where(win, e, sse)


def _lm(c: np.ndarray, s: _Setup, model: str, p: dict[str, np.ndarray], sse: np.ndarray, *,
        ve_max: float | None, max_iter: int, tol: float
        ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Batched Levenberg-Marquardt on (Ktrans, ln kep[, vp]) from the given start."""
    assert s.table is not None
    ext = model == "extended_tofts"
    lo, hi = s.table.bounds
    theta = np.stack([p["ktrans"], np.log(p["kep"])] + ([p["vp"]] if ext else []), axis=1)
    lam = np.full(c.shape[0], 1e-2)
    active = np.flatnonzero(np.isfinite(sse))
    e, de = s.table.eval(theta[active, 1], derivative=True)
    sse = sse.copy()
    start = theta[active, :1] * e + (theta[active, 2:3] * s.cp if ext else 0.0)
    sse[active] = ((c[active] - start) ** 2).sum(axis=1)
    for _ in range(max_iter):
        if active.size == 0:
            break
        th, ca = theta[active], c[active]
        resid = ca - th[:, :1] * e - (th[:, 2:3] * s.cp if ext else 0.0)
        cols = [e, th[:, :1] * de] + ([np.broadcast_to(s.cp, e.shape)] if ext else [])
        npar = len(cols)
        jtj = np.empty((active.size, npar, npar))
        jtr = np.empty((active.size, npar))
        for i in range(npar):
            jtr[:, i] = np.einsum("nt,nt->n", cols[i], resid)
            for j in range(i, npar):
                jtj[:, i, j] = jtj[:, j, i] = np.einsum("nt,nt->n", cols[i], cols[j])
        diag = np.einsum("nii->ni", jtj).copy()
        damped = jtj + (lam[active][:, None] * np.maximum(diag, 1e-12))[:, :, None] * np.eye(npar)
        try:
            step = np.linalg.solve(damped, jtr[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(damped.reshape(-1, npar), jtr.ravel(), rcond=None)[0]
        trial = th + step
        trial[:, 0] = np.maximum(trial[:, 0], 0.0)
        trial[:, 1] = np.clip(trial[:, 1], lo, hi)
        if ve_max is not None:
            floor = np.log(np.maximum(trial[:, 0], 1e-300) / ve_max)
            trial[:, 1] = np.clip(np.maximum(trial[:, 1], floor), lo, hi)
            trial[:, 0] = np.minimum(trial[:, 0], ve_max * np.exp(trial[:, 1]))
        if ext:
            trial[:, 2] = np.clip(trial[:, 2], 0.0, 1.0)
        e_new, de_new = s.table.eval(trial[:, 1], derivative=True)
        pred = trial[:, :1] * e_new + (trial[:, 2:3] * s.cp if ext else 0.0)
        sse_new = ((ca - pred) ** 2).sum(axis=1)
        better = sse_new < sse[active]
        gain = np.where(better, sse[active] - sse_new, 0.0)
        theta[active[better]] = trial[better]
        sse[active[better]] = sse_new[better]
        e[better], de[better] = e_new[better], de_new[better]
        lam[active] = np.where(better, lam[active] / 3, lam[active] * 4)
        done = (better & (gain <= tol * np.maximum(sse[active], 1e-30))) | (lam[active] > 1e8)
        keep = ~done
        active, e, de = active[keep], e[keep], de[keep]
    out = {"ktrans": theta[:, 0], "kep": np.exp(theta[:, 1])}
    out["vp"] = theta[:, 2] if ext else np.zeros(c.shape[0])
    return out, sse


def _parallel(fn, n: int, *, chunk: int = _CHUNK) -> None:
    """``fn(slice)`` over chunks of ``range(n)``, in threads (numpy releases the GIL).

    BLAS runs on one thread meanwhile: its own threads would compete with the chunk
    threads for the cores (and spin while they wait; on a busy machine a small product
    then takes 10x longer).
    """
    chunks = [slice(i, min(i + chunk, n)) for i in range(0, n, chunk)]
    workers = min(len(chunks), os.cpu_count() or 1, _MAX_THREADS)
    with _one_blas_thread():
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(fn, chunks))
        else:
            for chunk in chunks:
                fn(chunk)


_BLAS: list = []


def _one_blas_thread():
    """A context in which BLAS libraries use one thread (threadpoolctl; its scan of the
    loaded libraries is made once)."""
    if not _BLAS:
        from threadpoolctl import ThreadpoolController

        _BLAS.append(ThreadpoolController())
    return _BLAS[0].limit(limits=1, user_api="blas")


def _outputs(out: dict[str, np.ndarray], rows: np.ndarray | slice, n_frames: int, cc: np.ndarray,
             row_sum: np.ndarray, sse: np.ndarray, p: dict[str, np.ndarray], best_d: np.ndarray,
             delays: list[float], with_delay: bool, one_curve: bool) -> dict[str, np.ndarray]:
    """Fill :func:`fit_curves`' outputs at ``rows`` from the fit of those rows."""
    sst = cc - row_sum**2 / n_frames
    with np.errstate(divide="ignore", invalid="ignore"):
        out["r2"][rows] = np.where(sst > 0, 1 - sse / sst, np.nan)
        out["rmse"][rows] = np.sqrt(sse / n_frames)
        out["ktrans"][rows] = p["ktrans"]
        if "kep" in out:
            out["kep"][rows] = p["kep"]
            out["ve"][rows] = p["ktrans"] / p["kep"]
        if "vp" in out:
            out["vp"][rows] = p["vp"]
    if with_delay:
        out["delay_s"][rows] = np.asarray(delays)[best_d]
    if one_curve:
        return {k: v[:1] for k, v in out.items()}
    return out


def fit_curves(
    times_s: npt.ArrayLike,
    curves: npt.ArrayLike,
    aif: AIF,
    *,
    model: Model = "tofts",
    refine: bool = False,
    search: bool = True,
    polish: bool = True,
    delays_s: float | Sequence[float] | None = None,
    kep_range: tuple[float, float] = KEP_RANGE,
    ve_max: float | None = 1.0,
    max_iter: int = 50,
    step_s: float = 0.1,
) -> dict[str, np.ndarray]:
    """Fit a kinetic model to concentration curves (rows of ``curves``).

    Parameters
    ----------
    times_s : (T,) array_like
        Frame times in seconds, from 0 (the first frame) and increasing.
    curves : (T,) or (N, T) array_like
        Tissue concentrations in mM; rows with a NaN are not fitted. The
        default Tofts fit works in the curves' precision when they are float32
        (the fitted parameters agree with a float64 fit to ~1e-3 relative;
        ``r2`` and ``rmse`` to float32's precision of ``C.C``).
    aif : AIF
        Plasma input function on the same clock.
    model : {'tofts', 'extended_tofts', 'patlak'}
    refine : bool
        Refine the estimates by non-linear least squares
        (Levenberg-Marquardt, batched); Patlak is linear and exact already.
    polish : bool
        Tofts only (ignored with ``refine=True``): a few batched Gauss-Newton
        steps on ln(kep) with Ktrans eliminated (variable projection) from the
        linear / grid estimate, to the least-squares minimum of the exact
        model at a fraction of the cost of ``refine``.
    search : bool
        Also solve the exact model on a coarse grid of kep (one matrix
        product for all voxels, parabolic refinement) and keep, per voxel,
        whichever of this and the linear estimate fits better. It removes
        the bias of the linearisation where kep is high (small ve) at a
        small cost. With ``polish`` (the default, Tofts): the grid search
        and one verified Gauss-Newton step for every voxel, in the reduced
        basis of the model curves, without the linear fit (module notes).
    delays_s : float or sequence of float, optional
        Extra AIF delays to try for every voxel (seconds, added to the
        AIF's own delay); the one with the smallest residual is kept.
    kep_range : (float, float)
        Bounds of kep, /min.
    ve_max : float or None
        Upper bound of ve (1 = the whole tissue); None for no bound.
    max_iter : int
        Levenberg-Marquardt iterations at most.
    step_s : float
        Fine grid of the convolution, seconds: the AIF is taken as piecewise
        linear between its points (and integrated exactly against the
        exponential there). With the Parker AIF, 0.1 s keeps every curve within
        ~2e-4 of its peak of the continuous-time model (0.25 s: ~4e-4, enough
        to move a voxel on the edge of the QIBA tolerance, issue 6).

    Returns
    -------
    dict of str to numpy.ndarray
        ``ktrans`` (/min), ``ve``, ``kep`` (/min), ``vp`` (as the model
        has them), ``r2`` (1 - SSE/SST) and ``rmse`` (mM) of the model
        curve, and ``delay_s`` when ``delays_s`` is given; one value per row.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    if not isinstance(aif, AIF):
        raise TypeError(
            f"aif must be a medlab.timeseries.AIF, got {type(aif).__name__}; use e.g. "
            "ml.timeseries.parker_aif(delay_s=30) or ml.timeseries.measured_aif(conc, roi)"
        )
    t = np.asarray(times_s, dtype=float).ravel()
    c_in = np.atleast_2d(np.asarray(curves))
    if c_in.dtype not in (np.float32, np.float64):
        c_in = c_in.astype(np.float64)
    if c_in.shape[-1] != t.size:
        raise ValueError(f"curves have {c_in.shape[-1]} time points but times_s has {t.size}")
    if not 0 < kep_range[0] < kep_range[1]:
        raise ValueError(f"kep_range must be (low, high) with 0 < low < high, got {kep_range}")
    delays = [0.0] if delays_s is None else [float(d) for d in np.atleast_1d(delays_s)]
    setups = [_setup(t, aif, d, model=model, step_s=step_s, kep_range=kep_range)
              for d in delays]
    n = c_in.shape[0]
    names = [*PARAMETERS[model], "r2", "rmse"] + (["delay_s"] if delays_s is not None else [])
    if model == "tofts" and search and polish and not refine:
        # the default: the exact model on a kep grid for every voxel, then a Gauss-Newton
        # step, all in the few-dimensional basis of the model curves (one (N, T) x (T, r)
        # product touches the data, in its own precision)
        c_in = np.ascontiguousarray(c_in)
        best_p = {"ktrans": np.empty(n), "kep": np.empty(n), "vp": np.zeros(n)}
        best_sse = np.empty(n)
        best_d = np.zeros(n, dtype=int)
        cc, row_sum = np.empty(n), np.empty(n)
        for di, s in enumerate(setups):
            assert s.table is not None
            tab = s.table.reduced()
            kt_d, kep_d, sse = np.empty(n), np.empty(n), np.empty(n)

            def fast(sl: slice, tab=tab, kt_d: np.ndarray = kt_d, kep_d: np.ndarray = kep_d,
                     sse: np.ndarray = sse) -> None:
                _fast_tofts(c_in[sl], tab, ve_max, (kt_d[sl], kep_d[sl], sse[sl], cc[sl],
                                                    row_sum[sl]))

            # a chunk per core: the few rows of steps 4-5 are many enough to batch
            with np.errstate(invalid="ignore", over="ignore"):
                _parallel(fast, n, chunk=max(_BLOCK, -(-n // min(os.cpu_count() or 1,
                                                                   _MAX_THREADS))))
            if di == 0:
                best_sse, best_p["ktrans"], best_p["kep"] = sse, kt_d, kep_d
                continue
            win = sse < best_sse
            np.copyto(best_sse, sse, where=win)
            np.copyto(best_d, di, where=win)
            np.copyto(best_p["ktrans"], kt_d, where=win)
            np.copyto(best_p["kep"], kep_d, where=win)
        finite = np.isfinite(row_sum)
        rows: np.ndarray | slice = slice(None)
        if not finite.all():
            rows = np.flatnonzero(finite)
            cc, row_sum, best_sse, best_d = cc[rows], row_sum[rows], best_sse[rows], best_d[rows]
            best_p = {k: v[rows] for k, v in best_p.items()}
        # every row is written unless some are not finite
        out = {k: np.empty(n) if isinstance(rows, slice) else np.full(n, np.nan) for k in names}
        return _outputs(out, rows, t.size, cc, row_sum, best_sse, best_p, best_d, delays,
                        delays_s is not None, np.ndim(curves) == 1)
    out = {k: np.full(n, np.nan) for k in names}
    c_all = c_in.astype(np.float64, copy=False)
    row_sum = c_all.sum(axis=1)
    finite = np.isfinite(row_sum)
    rows = np.flatnonzero(finite)
    c_fit, row_sum = (c_all, row_sum) if rows.size == n else (c_all[rows], row_sum[rows])
    cc = np.einsum("nt,nt->n", c_fit, c_fit)
    best_p: dict[str, np.ndarray] = {}
    best_sse = np.full(rows.size, np.inf)
    best_d = np.zeros(rows.size, dtype=int)
    for di, s in enumerate(setups):
        p = {k: np.empty(rows.size) for k in ("ktrans", "kep", "vp")}
        sse = np.empty(rows.size)

        def linear(sl: slice, s: _Setup = s, p: dict = p, sse: np.ndarray = sse) -> None:
            q, e = _project(c_fit[sl], s, model, _linear(c_fit[sl], s, model), ve_max, cc[sl])
            for k, v in q.items():
                p[k][sl] = v
            sse[sl] = e

        _parallel(linear, rows.size)
        if search and model != "patlak":
            # the linearisation is biased where kep is high (the tissue curve follows the
            # AIF closely): check those voxels against a grid search of the exact model
            todo = np.flatnonzero(p["kep"] > _SEARCH_KEP)
            assert s.table is not None
            # one matrix product for all of them, in this thread: BLAS threads do not
            # compete with the chunk threads
            ec = c_fit[todo] @ s.table.coarse[0].T

            def grid(sl: slice, s: _Setup = s, p: dict = p, sse: np.ndarray = sse,
                     todo: np.ndarray = todo, ec: np.ndarray = ec) -> None:
                idx = todo[sl]
                q, e = _grid_search(c_fit[idx], ec[sl], s, model, cc[idx], ve_max)
                win = e < sse[idx]
                for k, v in q.items():
                    p[k][idx[win]] = v[win]
                sse[idx[win]] = e[win]

            _parallel(grid, todo.size)
        if polish and model == "tofts" and not refine:

            def gn(sl: slice, s: _Setup = s, p: dict = p, sse: np.ndarray = sse) -> None:
                q, e = _polish(c_fit[sl], s, {k: v[sl] for k, v in p.items()}, sse[sl],
                               cc[sl], ve_max, _POLISH_ITER)
                for k, v in q.items():
                    p[k][sl] = v
                sse[sl] = e

            _parallel(gn, rows.size)
        if refine and model != "patlak":

            def lm(sl: slice, s: _Setup = s, p: dict = p, sse: np.ndarray = sse) -> None:
                q, e = _lm(c_fit[sl], s, model, {k: v[sl] for k, v in p.items()}, sse[sl],
                           ve_max=ve_max, max_iter=max_iter, tol=1e-10)
                for k, v in q.items():
                    p[k][sl] = v
                sse[sl] = e

            _parallel(lm, rows.size)
        win = sse < best_sse
        best_sse = np.where(win, sse, best_sse)
        best_d = np.where(win, di, best_d)
        for k, v in p.items():
            best_p[k] = np.where(win, v, best_p[k]) if k in best_p else v
    return _outputs(out, rows, t.size, cc, row_sum, best_sse, best_p, best_d, delays,
                    delays_s is not None, np.ndim(curves) == 1)


def fit_kinetics(
    concentration: Image,
    aif: AIF,
    *,
    model: Model = "tofts",
    mask: Image | None = None,
    refine: bool = False,
    search: bool = True,
    polish: bool = True,
    delays_s: float | Sequence[float] | None = None,
    kep_range: tuple[float, float] = KEP_RANGE,
    ve_max: float | None = 1.0,
    max_iter: int = 50,
    step_s: float = 0.1,
):
    """Voxel-wise kinetic parameter maps of a concentration series.

    Parameters
    ----------
    concentration : Image
        Tissue concentration series in mM (e.g. from
        :func:`signal_to_concentration`), frame times in seconds.
    aif : AIF
        Plasma input function on the series' clock (:func:`parker_aif`,
        :func:`measured_aif`, ...).
    model : {'tofts', 'extended_tofts', 'patlak'}
    mask : Image, optional
        Voxels to fit (e.g. the enhancing tissue); NaN elsewhere.
    refine, search, polish, delays_s, kep_range, ve_max, max_iter, step_s
        As in :func:`fit_curves`.

    Returns
    -------
    KineticMaps
        A mapping of parameter name to 3D Image on the series' grid:
        ``ktrans`` (/min), ``ve``, ``kep`` (/min), ``vp``, ``r2``,
        ``rmse`` (mM) and ``delay_s`` (when searched); units in each
        image's ``meta['units']``.
    """
    from ._maps import KineticMaps

    require_series(concentration, "concentration", min_frames=3)
    if concentration.meta.get("units") not in (None, "mM"):
        raise TimeSeriesError(
            f"concentration has units {concentration.meta.get('units')!r}; kinetic models need "
            "concentrations in mM: convert the signal first with "
            "ml.timeseries.signal_to_concentration(...)"
        )
    keep = spatial_mask(concentration, mask)
    flat = np.asarray(concentration.array).reshape(-1, concentration.n_frames)
    rows = np.flatnonzero(keep.ravel()) if keep is not None else slice(None)
    res = fit_curves(concentration.frame_times_s, flat[rows], aif, model=model, refine=refine,
                     search=search, polish=polish, delays_s=delays_s, kep_range=kep_range,
                     ve_max=ve_max, max_iter=max_iter, step_s=step_s)
    maps = {}
    for name, values in res.items():
        if isinstance(rows, slice):
            arr = values.astype(np.float32)
        else:
            arr = np.full(flat.shape[0], np.nan, dtype=np.float32)
            arr[rows] = values
        maps[name] = arr.reshape(concentration.spatial_shape)
    method = "linear least squares (Murase 2004)"
    if refine and model != "patlak":
        method += " + Levenberg-Marquardt"
    elif polish and search and model == "tofts":
        method = "kep grid search + Gauss-Newton (variable projection), exact Tofts model"
    elif polish and model == "tofts":
        method += " + Gauss-Newton (variable projection)"
    return KineticMaps.from_arrays(concentration, maps, model=model, aif=aif, method=method)
