"""The compiled per-voxel steps of the default Tofts fit (numba; see :mod:`._fit`).

Imported on the first default Tofts fit, not with :mod:`medlab.timeseries` (numba and
llvmlite take a few tenths of a second to import). The functions are compiled on
their first call (``cache=True``: once per machine and dtype, stored in numba's
cache next to this file or in the user's cache directory) and release the GIL, so
the fit's chunk threads run them in parallel.

:func:`fit_block` does, for a block of rows of ``z = C @ [basis | 1]`` (each curve's
coordinates in the basis of the model curves and its sum) and of their grid scores
``x = z @ search_unit``, what the former numpy steps did with a dozen gathers and
temporaries per block: the argmax of the grid with its parabola, one Gauss-Newton
step on ln(kep) kept where it lowers the SSE, the search of flat valleys, and the
fit on the ``ve_max`` bound. Each step is a loop of its own over the block, so the
gathers from the look-up table of consecutive rows overlap (one loop doing every
step of a row waits on each gather in turn: 1.7x slower). The algebra is that of
:func:`._fit._fast_tofts`.
"""

from __future__ import annotations

import math
import warnings

import numba
import numpy as np

__all__ = ["fit_block", "sum_squares"]


def _probe() -> None:  # pragma: no cover - never called, only decorated
    pass


def _cache_location() -> bool:
    """Whether numba finds a writable place for this module's compiled code (the package's
    ``__pycache__``, ``NUMBA_CACHE_DIR`` or the user's cache directory).

    Where none is (a read-only install and home), ``njit(cache=True)`` raises at the
    decoration, i.e. on import: the functions are then compiled in memory, in each
    process, and a warning names the fix."""
    try:
        numba.njit(cache=True)(_probe)
    except RuntimeError:
        warnings.warn(
            "numba found no writable cache directory for medlab's compiled Tofts steps, so "
            "each Python process compiles them again (a few seconds per data type); set "
            "NUMBA_CACHE_DIR to a writable directory to compile them once",
            RuntimeWarning, stacklevel=2)
        return False
    return True


# no 'nnan'/'ninf': rows that are not finite are detected with math.isfinite
_FAST = {"reassoc", "contract", "nsz", "arcp"}
_JIT = {"cache": _cache_location(), "nogil": True, "fastmath": _FAST, "error_model": "numpy"}


@numba.njit(**_JIT)
def sum_squares(c: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = C_i . C_i`` (accumulated in float64)."""
    for i in range(c.shape[0]):
        s = 0.0
        for t in range(c.shape[1]):
            v = np.float64(c[i, t])
            s += v * v
        out[i] = s


@numba.njit(inline="always", **_JIT)
def _vertex(x: np.ndarray, i: int, first: float, spacing: float, edges: bool) -> int:
    """Dense index nearest to the maximum of the scores ``x[i]`` (grid point ``g`` is
    dense index ``first + g spacing``): the first argmax, refined by a parabola through
    its neighbours (within them); with ``edges`` an argmax at either end stays there (a
    bound of kep)."""
    n = x.shape[1]
    # the first argmax without branches: each score's float64 bits, made monotonic
    # (negatives flipped), with the reversed index in the 29 low bits that float32's
    # precision leaves zero
    key = np.int64(-9223372036854775807)
    for g in range(n):
        b = np.float64(x[i, g]).view(np.int64)
        b ^= (b >> 63) & np.int64(9223372036854775807)
        key = max(key, (b & ~np.int64(1023)) | np.int64(1023 - g))
    m = 1023 - np.int64(key & 1023)
    inner = min(max(m, 1), n - 2)
    x0, x1, x2 = np.float64(x[i, inner - 1]), np.float64(x[i, inner]), np.float64(x[i, inner + 1])
    curv = x1 + x1 - x0 - x2
    shift = 0.0
    if curv > 0:
        shift = min(max(0.5 * (x2 - x0) / curv, -1.0), 1.0)
    if edges:
        if m == n - 1:
            shift = 1.0
        elif m == 0:
            shift = -1.0
    return math.floor((inner + shift) * spacing + first + 0.5)


@numba.njit(inline="always", **_JIT)
def _dot(pair: np.ndarray, j: int, q: int, z: np.ndarray, i: int, r: int) -> float:
    """``pair[j, q, :r] . z[i, :r]`` in float64."""
    s = 0.0
    for k in range(r):
        s += np.float64(pair[j, q, k]) * np.float64(z[i, k])
    return s


@numba.njit(inline="always", **_JIT)
def _dot2(pair: np.ndarray, j: int, z: np.ndarray, i: int, r: int) -> tuple[float, float]:
    """``pair[j, 0, :r] . z[i, :r]`` and ``pair[j, 1, :r] . z[i, :r]`` in float64."""
    s0 = 0.0
    s1 = 0.0
    for k in range(r):
        zk = np.float64(z[i, k])
        s0 += np.float64(pair[j, 0, k]) * zk
        s1 += np.float64(pair[j, 1, k]) * zk
    return s0, s1


@numba.njit(inline="always", **_JIT)
def _e_dot(pair: np.ndarray, j: int, z: np.ndarray, i: int, r: int) -> float:
    """``E.C`` at dense point ``j`` (the last point is the last interval's end)."""
    last = pair.shape[0] - 1
    if j <= last:
        return _dot(pair, j, 0, z, i, r)
    return _dot(pair, last, 0, z, i, r) + _dot(pair, last, 1, z, i, r)


@numba.njit(**_JIT)
def fit_block(z, x, r, cc, search_spacing, pair, ee_rows, ee_pair, kep_dense, flat_from,
              flat_j, flat_unit, step, max_step, ve_max, kt, kep, f, xf, j_buf, bound, trial):
    """Fit the rows of ``z`` (N, w; the first ``r`` columns are the coordinates in the
    basis, column ``r`` the row sum) from their grid scores ``x`` (N, G).

    Writes Ktrans, kep and ``f = C.C - SSE`` (``cc`` holds ``C.C``); a row whose sum is
    not finite gets Ktrans 0, ``f`` 0, ``cc`` 0. ``pair`` (M - 1, 2, w): ``[E | E']`` of
    each dense interval; ``ee_pair`` (M - 1, 3): their ``E.E``, ``2 E.E'``, ``E'.E'``;
    ``ee_rows`` (M,) and ``kep_dense`` (M,): ``E.E`` and kep at the dense points;
    ``flat_*``: the search of flat valleys (:meth:`ConvTable.reduced`); ``step``: the
    dense step in ln(kep), ``max_step`` the largest Gauss-Newton step in dense steps;
    ``ve_max < 0``: no bound on ve. ``xf`` (1, K), ``j_buf``, ``bound`` and ``trial`` (N,) are scratch.
    """
    n = z.shape[0]
    last = pair.shape[0] - 1  # the last dense interval
    n_flat = flat_j.size
    flat_spacing = (flat_j[n_flat - 1] - flat_j[0]) / (n_flat - 1)
    lo = math.log(kep_dense[0])
    # 1. global search: the grid point of largest E.C / |E|, refined by a parabola
    for i in range(n):
        j_buf[i] = min(max(_vertex(x, i, 0.0, search_spacing, False), 0), last)
    # 2. one Gauss-Newton step on ln(kep) with Ktrans eliminated (variable projection):
    # du = (g1 - kt hp / 2) / (kt (e2 - hp^2 / (4 h))) in dense steps, rounded to a point
    for i in range(n):
        j = j_buf[i]
        g, g1 = _dot2(pair, j, z, i, r)
        h, hp, e2 = ee_pair[j, 0], ee_pair[j, 1], ee_pair[j, 2]
        k0 = max(g, 0.0) / h
        denom = k0 * (e2 - 0.25 * hp * hp / h)
        du = 0.0
        if denom > 0:
            du = min(max((g1 - 0.5 * k0 * hp) / denom, -max_step), max_step)
        kt[i] = k0
        f[i] = g * k0
        kep[i] = min(max(j + math.floor(du + 0.5), 0), last)  # the trial point
    # 3. the trial point kept where it lowers the SSE (exact there: a dense point)
    for i in range(n):
        j1 = int(kep[i])
        if j1 == j_buf[i]:
            continue
        g = _dot(pair, j1, 0, z, i, r)
        k1 = max(g, 0.0) / ee_rows[j1]
        if g * k1 > f[i]:
            j_buf[i] = j1
            kt[i] = k1
            f[i] = g * k1
    # 4. flat valleys (kep > 20/min): the SSE valley is flat in ln(kep) and one step does
    # not settle it; a second search of the kep range above 10/min, its parabola, the
    # nearest dense point, kept where it is better
    for i in range(n):
        if j_buf[i] < flat_from or not math.isfinite(z[i, r]):
            continue
        for g in range(n_flat):
            xf[0, g] = 0.0
        for k in range(r):
            zk = z[i, k]
            for g in range(n_flat):
                xf[0, g] += zk * flat_unit[k, g]
        jf = min(max(_vertex(xf, 0, flat_j[0], flat_spacing, True), 0), last + 1)
        g = _e_dot(pair, jf, z, i, r)
        k1 = max(g, 0.0) / ee_rows[jf]
        if g * k1 > f[i]:
            j_buf[i], kt[i], f[i] = jf, k1, g * k1
    # 5. above ve_max: the fit on the bound Ktrans = ve_max kep, i.e. the model a E(u) with
    # a = ve_max exp(u); Gauss-Newton on u with J = a (E + E'), each step kept where it
    # lowers the SSE (three evaluations), from kep = Ktrans / ve_max; the rows on the bound
    # step together (their gathers overlap), their trial points in kep[], steps in cc[]...
    n_bound = 0
    if ve_max >= 0:
        for i in range(n):
            if kt[i] > ve_max * kep_dense[j_buf[i]] and math.isfinite(z[i, r]):
                jb = min(max(int((math.log(kt[i] / ve_max) - lo) / step + 0.5), 0), last)
                bound[n_bound] = i
                trial[n_bound] = jb
                f[i] = -np.inf
                n_bound += 1
    for it in range(3):
        for q in range(n_bound):
            i, jb = bound[q], trial[q]
            g, g1 = _dot2(pair, jb, z, i, r)
            h = ee_pair[jb, 0]
            a = kep_dense[jb] * ve_max
            fj = a * (2 * g - a * h)  # the SSE reduction 2 a E.C - a^2 E.E
            better = fj > f[i]
            if better:
                j_buf[i], f[i] = jb, fj
            if it == 2:
                continue
            # J.r and J.J with E' = diff / step, in table steps
            hp, e2 = ee_pair[jb, 1], ee_pair[jb, 2]
            jr = (g * step + g1) - a * (h * step + 0.5 * hp)
            jj = a * (h * step * step + hp * step + e2)
            du = 0.0
            if jj > 0 and better:
                du = min(max(jr / jj, -max_step), max_step)
            trial[q] = min(max(j_buf[i] + math.floor(du + 0.5), 0), last)
    for q in range(n_bound):
        kt[bound[q]] = ve_max * kep_dense[j_buf[bound[q]]]
    # the outputs; NaN / inf rows are fitted as zeros
    for i in range(n):
        if math.isfinite(z[i, r]):
            kep[i] = kep_dense[j_buf[i]]
        else:
            kt[i], kep[i], f[i], cc[i] = 0.0, kep_dense[0], 0.0, 0.0
