"""Tracer-kinetic models: exact convolutions of the AIF with exponentials.

Tissue concentrations of the standard models (Tofts & Kermode, MRM
17:357, 1991; Tofts et al., JMRI 10:223, 1999; Patlak et al., J Cereb
Blood Flow Metab 3:1, 1983; the "extended" Tofts model with a plasma
term, Tofts 1997)::

    Tofts:           C(t) = Ktrans * int_0^t Cp(s) exp(-kep (t - s)) ds
    extended Tofts:  C(t) = the above + vp Cp(t)
    Patlak:          C(t) = Ktrans * int_0^t Cp(s) ds + vp Cp(t)

with ``kep = Ktrans / ve``; Ktrans and kep per minute, times in minutes
internally. The AIF is evaluated on a fine grid (every ``step_s`` seconds
plus every frame time and every kink of the AIF) and taken as piecewise
linear there; the convolution with the exponential is then integrated
exactly on each interval, so the result does not depend on the frame
spacing.
"""

from __future__ import annotations

import copy
import hashlib
from collections import OrderedDict

import numpy as np
import numpy.typing as npt

from ._aif import AIF

__all__ = ["extended_tofts", "patlak", "tofts"]

#: default bounds of kep (/min) for fitting and its look-up table
KEP_RANGE = (1e-3, 100.0)
_N_TABLE = 300
_N_COARSE = 48
#: dense points per spline-node interval: linear interpolation between them (the fit's
#: polish) must not move the least-squares minimum of a flat valley (kep ~ 40/min,
#: issue 6); 8 did by about one dense step
_DENSE = 32
_CHUNK = 2048
#: relative error of every (normalised) table curve in the basis of :meth:`ConvTable.reduced`
#: (about 2e-5 at most): a tenth of the error of the 0.1 s convolution grid
_RANK_TOL = 1e-5
#: ln(kep) grid of the default fit's global search (:meth:`ConvTable.reduced`)
_N_SEARCH = 32
#: the default fit's search of flat SSE valleys (where its first estimate of kep is above
#: _FLAT_KEP /min): _N_FLAT points of ln(kep) from kep _FLAT_FROM (/min) to the upper bound
_FLAT_KEP = 20.0
_FLAT_FROM = 10.0
_N_FLAT = 96
#: look-up tables kept for reuse (building one costs more than fitting a volume)
_TABLE_CACHE: OrderedDict[bytes, ConvTable] = OrderedDict()
_TABLE_CACHE_SIZE = 8


def _phi12(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """phi1(x) = int_0^1 exp(-x u) du and phi2(x) = int_0^1 u exp(-x u) du (x >= 0)."""
    small = x < 0.05
    xs = np.where(small, 1.0, x)
    e = np.exp(-xs)
    phi1 = -np.expm1(-xs) / xs
    phi2 = (1 - e * (1 + xs)) / xs**2
    if small.any():
        z = np.where(small, x, 0.0)
        s1 = 1 - z / 2 + z**2 / 6 - z**3 / 24 + z**4 / 120 - z**5 / 720
        s2 = 0.5 - z / 3 + z**2 / 8 - z**3 / 30 + z**4 / 144 - z**5 / 840
        phi1 = np.where(small, s1, phi1)
        phi2 = np.where(small, s2, phi2)
    return phi1, phi2


class FineGrid:
    """The AIF on a fine time grid (minutes) holding every frame time."""

    def __init__(self, times_s: npt.ArrayLike, aif: AIF, *, step_s: float = 0.25) -> None:
        if not isinstance(aif, AIF):
            raise TypeError(
                f"aif must be a medlab.timeseries.AIF (e.g. ml.timeseries.parker_aif(delay_s=30)), "
                f"got {type(aif).__name__}"
            )
        t = np.asarray(times_s, dtype=float).ravel()
        if t.size < 2 or np.any(np.diff(t) <= 0) or t[0] < 0:
            raise ValueError("times_s must be >= 0 and strictly increasing, with >= 2 frames")
        if step_s <= 0:
            raise ValueError(f"step_s must be > 0, got {step_s}")
        end = t[-1]
        kinks = aif.kinks_s()
        kinks = kinks[(kinks > 0) & (kinks < end)]
        grid_s = np.unique(np.concatenate([[0.0], np.arange(0.0, end, step_s), t, kinks]))
        self.times_s = t
        self.g = grid_s / 60.0
        self.cp = aif(grid_s)
        self.frame_pos = np.searchsorted(grid_s, t)
        self.cp_frames = self.cp[self.frame_pos]
        d = np.diff(self.g)
        # segment of each fine interval: the first frame at or after its end
        self._seg = np.searchsorted(self.frame_pos, np.arange(1, len(self.g)))
        self._d = d
        self._dcp = np.diff(self.cp)
        self._to_frame_end = self.g[self.frame_pos[np.minimum(self._seg, len(t) - 1)]] - self.g[1:]
        self._valid = self._seg < len(t)

    def exp_conv(self, k: npt.ArrayLike) -> np.ndarray:
        """``int_0^t Cp(s) exp(-k (t - s)) ds`` at the frame times, shape (K, T); k in /min."""
        k = np.atleast_1d(np.asarray(k, dtype=float))
        out = np.empty((k.size, self.times_s.size))
        for start in range(0, k.size, _CHUNK):
            out[start:start + _CHUNK] = self._exp_conv(k[start:start + _CHUNK])
        return out

    def _exp_conv(self, k: np.ndarray) -> np.ndarray:
        # phi1, phi2 only depend on k * d, and d takes few distinct values (the step, and
        # the pieces cut by frame times and kinks): compute them once per distinct d
        d_unique, d_index = np.unique(np.round(self._d, 12), return_inverse=True)
        phi1, phi2 = _phi12(k[:, None] * d_unique[None, :])
        local = self._d * (self.cp[1:] * phi1[:, d_index] - self._dcp * phi2[:, d_index])
        local *= np.exp(-k[:, None] * self._to_frame_end[None, :])
        local[:, ~self._valid] = 0.0
        csum = np.concatenate([np.zeros((k.size, 1)), np.cumsum(local, axis=1)], axis=1)
        pos = self.frame_pos
        seg_sum = csum[:, pos] - csum[:, np.concatenate([[0], pos[:-1]])]
        tf = self.g[pos]
        decay = np.exp(-k[:, None] * np.diff(tf)[None, :])
        out = np.empty_like(seg_sum)
        out[:, 0] = seg_sum[:, 0]
        for i in range(1, tf.size):
            out[:, i] = out[:, i - 1] * decay[:, i - 1] + seg_sum[:, i]
        return out

    def integral(self) -> np.ndarray:
        """``int_0^t Cp(s) ds`` at the frame times (mM min)."""
        return self.exp_conv(0.0)[0]


class ConvTable:
    """``E(kep)`` at the frame times, tabulated over ``u = ln(kep)``.

    Exact values at ``n`` nodes are interpolated by a cubic spline (value and
    derivative, for the non-linear fit); a dense table sampled from the spline
    (``dense`` points per node interval) serves fast linear interpolation with
    precomputed inner products (for the linear fit and the fit quality).
    """

    def __init__(self, grid: FineGrid, *, kep_range: tuple[float, float] = KEP_RANGE,
                 n: int = _N_TABLE, dense: int = _DENSE) -> None:
        lo, hi = np.log(kep_range[0]), np.log(kep_range[1])
        self.u = np.linspace(lo, hi, n)
        self.grid = grid
        from scipy.interpolate import CubicSpline

        spline = CubicSpline(self.u, grid.exp_conv(np.exp(self.u)), axis=0)
        self.spline = spline
        self.coef = np.ascontiguousarray(spline.c)  # (4, n-1, T)
        self.bounds = (lo, hi)
        self.u_dense = np.linspace(lo, hi, (n - 1) * dense + 1)
        self.e_dense = np.ascontiguousarray(spline(self.u_dense))  # (M, T)
        self.step_dense = self.u_dense[1] - self.u_dense[0]
        e0, e1 = self.e_dense[:-1], self.e_dense[1:]
        self.diff_dense = np.ascontiguousarray(e1 - e0)
        # |E(w)|^2 = ee0 + w ee1 + w^2 ee2 and E(w).cp = ecp0 + w ecp1 on each dense interval
        self.ee = (np.einsum("mt,mt->m", e0, e0), 2 * np.einsum("mt,mt->m", e0, self.diff_dense),
                   np.einsum("mt,mt->m", self.diff_dense, self.diff_dense))
        self.ecp = (e0 @ grid.cp_frames, self.diff_dense @ grid.cp_frames)
        # a coarse grid for the global search of the fit
        coarse_u = np.linspace(lo, hi, _N_COARSE)
        coarse_e = np.ascontiguousarray(spline(coarse_u))
        self.coarse = (coarse_e, coarse_u)
        self.coarse_ee = np.einsum("mt,mt->m", coarse_e, coarse_e)
        self.coarse_ecp = coarse_e @ grid.cp_frames
        self.basis: np.ndarray | None = None
        self._reduced: ConvTable | None = None

    def reduced(self) -> ConvTable:
        """This table in an orthonormal basis of its curves (cached): a copy whose rows
        ``e_dense``, ``diff_dense`` and ``coarse`` are coordinates in :attr:`basis` (T, r).

        The curves ``E(kep)`` over the whole kep range span few dimensions: every
        curve of the table, normalised, is within ``_RANK_TOL`` (relative) of its
        projection on the first r singular vectors of the normalised table -- 13 of
        them for 60 frames with the Parker AIF. With ``z = C @ basis`` every product
        ``E.C`` is ``E_r.z`` (r terms instead of T): the part of ``C`` outside the
        basis does not depend on kep. ``ee`` and ``ecp`` are kept from the full
        table. For the default fit it also holds, in float32 and float64:

        - ``project[dtype]`` (T, w >= r + 1): ``[basis | 1 | 0...]``, so
          ``C @ project`` gives ``z`` and each row's sum in one matrix product; the
          tables below are padded to w coordinates with zeros, so they apply to
          ``C @ project`` directly;
        - ``search_u`` (G,) and ``search_unit[dtype]`` (w, G): a grid of ln(kep)
          and its unit-norm curves, so ``z @ search_unit`` is ``E.C / |E|`` there;
        - ``pair[dtype]`` (M - 1, 2, w): ``[E | E']`` of each dense interval, and
          ``ee_rows`` (M,): ``E.E`` at each dense point, and ``ee_pair`` (M - 1, 3):
          ``ee`` of each interval;
        - ``kep_dense`` (M,): kep at the dense points;
        - ``flat_from``: the first dense point above kep ``_FLAT_KEP``, and
          ``flat_j`` (K,), ``flat_unit[dtype]`` (w, K): dense points from kep
          ``_FLAT_FROM`` to the upper bound and their unit-norm curves (the
          default fit's search of flat SSE valleys).
        """
        if self._reduced is None:
            e = self.e_dense
            unit = e / np.linalg.norm(e, axis=1, keepdims=True)
            _, sv, vt = np.linalg.svd(unit, full_matrices=False)
            rank = max(2, int(np.count_nonzero(sv > _RANK_TOL * sv[0])))
            basis = np.ascontiguousarray(vt[:rank].T)  # (T, r)
            red = copy.copy(self)
            red.basis = basis
            red.e_dense = np.ascontiguousarray(e @ basis)
            red.diff_dense = np.ascontiguousarray(self.diff_dense @ basis)
            red.coarse = (np.ascontiguousarray(self.coarse[0] @ basis), self.coarse[1])
            lo, hi = self.bounds
            red.search_u = np.linspace(lo, hi, _N_SEARCH)
            curves = self.spline(red.search_u)
            search_unit = (curves / np.linalg.norm(curves, axis=1, keepdims=True)) @ basis
            # [basis | 1], padded with zero columns to a multiple of 8 (BLAS kernels' width)
            project = np.zeros((basis.shape[0], -(-(rank + 1) // 8) * 8))
            project[:, :rank] = basis
            project[:, rank] = 1.0
            pair = np.stack([red.e_dense[:-1], red.diff_dense], axis=1)
            red.ee_rows = np.einsum("mt,mt->m", e, e)
            red.ee_pair = np.ascontiguousarray(np.stack(self.ee, axis=1))
            m = self.u_dense.size
            red.kep_dense = np.exp(self.u_dense)
            red.flat_from = int(np.searchsorted(self.u_dense, np.log(_FLAT_KEP), side="right"))
            # evenly spaced (a whole number of dense steps) down from the upper bound to
            # kep _FLAT_FROM or a little below
            start = np.searchsorted(self.u_dense, np.log(_FLAT_FROM))
            spacing = max(1, -(-(m - 1 - start) // (_N_FLAT - 1)))
            red.flat_j = np.maximum(m - 1 - spacing * np.arange(_N_FLAT)[::-1], 0)
            flat_unit = red.e_dense[red.flat_j] / np.sqrt(red.ee_rows[red.flat_j])[:, None]
            width = project.shape[1]

            def pad(a: np.ndarray, dt: np.dtype) -> np.ndarray:
                # zero coordinates past r: a product with C @ project (its row sum
                # included) is then the product with z
                out = np.zeros((*a.shape[:-1], width), dtype=dt)
                out[..., :rank] = a
                return out

            red.project, red.search_unit, red.pair = {}, {}, {}
            red.flat_unit = {}
            for dt in (np.dtype(np.float32), np.dtype(np.float64)):
                red.project[dt] = np.ascontiguousarray(project, dtype=dt)
                red.search_unit[dt] = np.ascontiguousarray(pad(search_unit, dt).T)
                red.pair[dt] = pad(pair, dt)
                red.flat_unit[dt] = np.ascontiguousarray(pad(flat_unit, dt).T)
            red._reduced = red
            self._reduced = red
        return self._reduced

    def eval(self, u: np.ndarray, *, derivative: bool = False
             ) -> tuple[np.ndarray, np.ndarray | None]:
        """E and dE/du at ``u = ln(kep)`` per voxel: (N, T) arrays (cubic spline)."""
        u = np.clip(u, *self.bounds)
        idx = np.clip(np.searchsorted(self.u, u, side="right") - 1, 0, self.u.size - 2)
        dx = (u - self.u[idx])[:, None]
        c0, c1, c2, c3 = (self.coef[j][idx] for j in range(4))
        value = ((c0 * dx + c1) * dx + c2) * dx + c3
        if not derivative:
            return value, None
        return value, (3 * c0 * dx + 2 * c1) * dx + c2

    def products(self, u: np.ndarray, c: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``E.E``, ``E.C`` and ``E.cp`` per row of ``c`` at ``u`` (dense linear interpolation)."""
        u = np.clip(u, *self.bounds)
        pos = (u - self.bounds[0]) / self.step_dense
        j = np.clip(pos.astype(np.intp), 0, self.u_dense.size - 2)
        w = pos - j
        ec = np.einsum("nt,nt->n", self.e_dense[j], c)
        ec += w * np.einsum("nt,nt->n", self.diff_dense[j], c)
        ee = self.ee[0][j] + w * (self.ee[1][j] + w * self.ee[2][j])
        ecp = self.ecp[0][j] + w * self.ecp[1][j]
        return ee, ec, ecp


def conv_table(grid: FineGrid, *, kep_range: tuple[float, float] = KEP_RANGE) -> ConvTable:
    """The :class:`ConvTable` of ``grid`` and ``kep_range``, reused while the AIF samples,
    frame times and range are the same (a small cache keyed on their bytes)."""
    h = hashlib.sha1()
    for part in (grid.g, grid.cp, grid.times_s, np.asarray(kep_range, dtype=float)):
        h.update(np.ascontiguousarray(part, dtype=float).tobytes())
    key = h.digest()
    table = _TABLE_CACHE.get(key)
    if table is None:
        table = ConvTable(grid, kep_range=kep_range)
        _TABLE_CACHE[key] = table
        while len(_TABLE_CACHE) > _TABLE_CACHE_SIZE:
            _TABLE_CACHE.popitem(last=False)
    else:
        _TABLE_CACHE.move_to_end(key)
    return table


def _broadcast(**params: npt.ArrayLike) -> tuple[tuple[int, ...], dict[str, np.ndarray]]:
    arrays = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in params.values()))
    shape = arrays[0].shape
    return shape, {k: a.ravel() for k, a in zip(params, arrays, strict=True)}


def tofts(times_s: npt.ArrayLike, aif: AIF, *, ktrans: npt.ArrayLike, ve: npt.ArrayLike,
          step_s: float = 0.25) -> np.ndarray:
    """Tissue concentration (mM) of the Tofts model at ``times_s``.

    Parameters
    ----------
    times_s : array_like
        Frame times in seconds (>= 0, increasing; 0 = first frame).
    aif : AIF
        Plasma input function.
    ktrans : array_like
        Volume transfer constant, /min (broadcast with ``ve``).
    ve : array_like
        Extravascular extracellular volume fraction (> 0).
    step_s : float
        Fine integration grid spacing, seconds.

    Returns
    -------
    numpy.ndarray
        Shape ``broadcast(ktrans, ve).shape + (len(times_s),)``.
    """
    shape, p = _broadcast(ktrans=ktrans, ve=ve)
    if np.any(p["ve"] <= 0):
        raise ValueError("ve must be > 0")
    grid = FineGrid(times_s, aif, step_s=step_s)
    curves = p["ktrans"][:, None] * grid.exp_conv(p["ktrans"] / p["ve"])
    return curves.reshape(*shape, -1)


def extended_tofts(times_s: npt.ArrayLike, aif: AIF, *, ktrans: npt.ArrayLike,
                   ve: npt.ArrayLike, vp: npt.ArrayLike, step_s: float = 0.25) -> np.ndarray:
    """Tissue concentration (mM) of the extended Tofts model (``vp``: plasma fraction)."""
    shape, p = _broadcast(ktrans=ktrans, ve=ve, vp=vp)
    if np.any(p["ve"] <= 0):
        raise ValueError("ve must be > 0")
    grid = FineGrid(times_s, aif, step_s=step_s)
    curves = p["ktrans"][:, None] * grid.exp_conv(p["ktrans"] / p["ve"])
    curves += p["vp"][:, None] * grid.cp_frames[None, :]
    return curves.reshape(*shape, -1)


def patlak(times_s: npt.ArrayLike, aif: AIF, *, ktrans: npt.ArrayLike, vp: npt.ArrayLike,
           step_s: float = 0.25) -> np.ndarray:
    """Tissue concentration (mM) of the Patlak model (irreversible uptake plus plasma)."""
    shape, p = _broadcast(ktrans=ktrans, vp=vp)
    grid = FineGrid(times_s, aif, step_s=step_s)
    curves = p["ktrans"][:, None] * grid.integral()[None, :] + p["vp"][:, None] * grid.cp_frames
    return curves.reshape(*shape, -1)
