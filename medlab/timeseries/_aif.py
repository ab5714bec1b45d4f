"""Arterial input functions: population models with delay, and measured ones.

An :class:`AIF` gives the **plasma** concentration (mM) at times in
seconds measured on the series' clock (0 = first frame). Population
models are defined from the time of injection/bolus arrival, which sits at
``delay_s`` on that clock; they are 0 before it.

Population models:

- :func:`parker_aif` -- Parker GJM, Roberts C, Macdonald A, et al.
  "Experimentally-derived functional form for a population-averaged
  high-temporal-resolution arterial input function for dynamic
  contrast-enhanced MRI." Magn Reson Med 2006;56:993-1000,
  doi:10.1002/mrm.21066 (Table 1; whole-blood concentration, two
  Gaussians plus an exponential modulated by a sigmoid).
- :func:`georgiou_aif` -- Georgiou L, Wilson DJ, Sharma N, Perren TJ,
  Buckley DL. "A functional form for a representative individual arterial
  input function measured from a population using high temporal
  resolution DCE MRI." Magn Reson Med 2019;81:1955-1963,
  doi:10.1002/mrm.27524 (Table 3; Horsfield et al. Phys Med Biol 2009
  model: three exponentials times a train of gamma variates, one per
  recirculation; whole blood).
- :func:`mcgrath_aif` -- preclinical (rat): McGrath DM, Bradley DP, Tessier
  JL, Lacey T, Taylor CJ, Parker GJM. "Comparison of model-based arterial
  input functions for dynamic contrast-enhanced MRI in tumor bearing
  rats." Magn Reson Med 2009;61:1173-1184, doi:10.1002/mrm.21959 (Table 1,
  model B, Eq. 5: a linear rise over 7 s, then a bi-exponential decay).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
from scipy.special import gammaln

from ..image import Image
from ._common import require_series

__all__ = ["AIF", "georgiou_aif", "mcgrath_aif", "measured_aif", "parker_aif"]


@dataclass(frozen=True)
class AIF:
    """An arterial input function: plasma concentration (mM) against time (s).

    Parameters
    ----------
    function : callable, optional
        ``f(t_s) -> mM`` for times since injection (t >= 0); evaluated
        at ``t - delay_s`` and 0 before the delay.
    times_s, values : array_like, optional
        Instead of ``function``: samples (e.g. a measured curve), linearly
        interpolated, held at the last value after the last sample and 0
        before the first.
    delay_s : float
        Shift of the whole curve, seconds (bolus arrival on the series'
        clock).
    name : str
        For display and metadata.

    Examples
    --------
    >>> aif = parker_aif(delay_s=30)
    >>> float(aif(np.array([0.0]))[0]), round(float(aif(np.array([40.2]))[0]), 2)
    (0.0, 10.46)
    """

    function: Callable[[np.ndarray], np.ndarray] | None = None
    times_s: np.ndarray | None = None
    values: np.ndarray | None = None
    delay_s: float = 0.0
    name: str = "aif"
    breakpoints_s: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        if (self.function is None) == (self.times_s is None):
            raise ValueError("an AIF needs either a function or samples (times_s and values)")
        if self.times_s is not None:
            t = np.asarray(self.times_s, dtype=float).ravel()
            v = np.asarray(self.values, dtype=float).ravel()
            if t.size != v.size or t.size < 2:
                raise ValueError(f"an AIF needs >= 2 samples with one value each, got "
                                 f"{t.size} times and {v.size} values")
            if np.any(np.diff(t) <= 0) or not np.all(np.isfinite(v)):
                raise ValueError("AIF sample times must increase and values must be finite")
            object.__setattr__(self, "times_s", t)
            object.__setattr__(self, "values", v)
        if not np.isfinite(self.delay_s):
            raise ValueError(f"delay_s must be finite, got {self.delay_s}")

    def __call__(self, times_s: npt.ArrayLike) -> np.ndarray:
        """Plasma concentration (mM) at ``times_s`` (seconds on the series' clock)."""
        t = np.asarray(times_s, dtype=float) - self.delay_s
        if self.function is not None:
            out = np.zeros_like(t)
            pos = t >= 0
            out[pos] = self.function(t[pos])
            return out
        assert self.times_s is not None and self.values is not None
        return np.interp(t, self.times_s, self.values, left=0.0, right=self.values[-1])

    def delayed(self, delay_s: float) -> AIF:
        """The same AIF with ``delay_s`` added to its delay."""
        return replace(self, delay_s=self.delay_s + float(delay_s))

    def kinks_s(self) -> np.ndarray:
        """Times (s) where the curve is not smooth (grid points for exact integration)."""
        own = self.times_s if self.times_s is not None else self.breakpoints_s
        return np.concatenate([[0.0], np.asarray(own, dtype=float)]) + self.delay_s

    def __repr__(self) -> str:
        kind = "function" if self.function is not None else f"{len(self.times_s)} samples"
        return f"AIF({self.name!r}, {kind}, delay_s={self.delay_s:g})"


def _plasma(blood: Callable[[np.ndarray], np.ndarray], hematocrit: float
            ) -> Callable[[np.ndarray], np.ndarray]:
    if not 0 <= hematocrit < 1:
        raise ValueError(f"hematocrit must be in [0, 1), got {hematocrit}")
    return lambda t: blood(t) / (1.0 - hematocrit)


def _parker_blood(t_s: np.ndarray) -> np.ndarray:
    t = t_s / 60.0  # minutes
    a1, a2, t1, t2, s1, s2 = 0.809, 0.330, 0.17046, 0.365, 0.0563, 0.132
    alpha, beta, s, tau = 1.050, 0.1685, 38.078, 0.483
    g1 = a1 / (s1 * np.sqrt(2 * np.pi)) * np.exp(-((t - t1) ** 2) / (2 * s1**2))
    g2 = a2 / (s2 * np.sqrt(2 * np.pi)) * np.exp(-((t - t2) ** 2) / (2 * s2**2))
    return g1 + g2 + alpha * np.exp(-beta * t) / (1 + np.exp(-s * (t - tau)))


def parker_aif(*, delay_s: float = 0.0, hematocrit: float = 0.42) -> AIF:
    """Population AIF of Parker et al. (2006), as plasma concentration.

    Parameters
    ----------
    delay_s : float
        Time of injection on the series' clock (seconds after the first
        frame); the first-pass peak follows about 10 s later.
    hematocrit : float
        Converts the published whole-blood curve to plasma:
        ``Cp = Cb / (1 - Hct)``. Use 0 to get the blood curve.
    """
    return AIF(function=_plasma(_parker_blood, hematocrit), delay_s=float(delay_s),
               name="Parker 2006")


def _georgiou_blood(t_s: np.ndarray) -> np.ndarray:
    t = t_s / 60.0  # minutes
    a = np.array([0.37, 0.33, 10.06])  # mM
    m = np.array([0.11, 1.17, 16.02])  # /min
    alpha, beta, tau = 5.26, 0.032, 0.129  # -, min, min
    envelope = (a[:, None] * np.exp(-m[:, None] * t[None, :])).sum(axis=0)
    train = np.zeros_like(t)
    n_circ = int(np.floor(t.max() / tau)) + 1 if t.size else 0
    for j in range(n_circ):
        tj = t - j * tau
        pos = tj > 0
        if not pos.any():
            continue
        aj = (j + 1) * alpha + j
        log_g = aj * np.log(tj[pos]) - tj[pos] / beta - (aj + 1) * np.log(beta) - gammaln(aj + 1)
        train[pos] += np.exp(log_g)
    return envelope * train


def georgiou_aif(*, delay_s: float = 0.0, hematocrit: float = 0.42) -> AIF:
    """Population AIF of Georgiou et al. (2019), as plasma concentration.

    A representative individual AIF (0.1 mmol/kg) in the functional form
    of Horsfield et al. (2009), Table 3 parameters. ``delay_s`` and
    ``hematocrit`` as in :func:`parker_aif`.
    """
    return AIF(function=_plasma(_georgiou_blood, hematocrit), delay_s=float(delay_s),
               name="Georgiou 2019")


def _mcgrath(t_s: np.ndarray) -> np.ndarray:
    a1, a2, k1, k2, t1 = 3.4, 1.81, 0.045, 0.0015, 7.0  # mM, mM, /s, /s, s
    rise = (a1 + a2) * t_s / t1
    decay = a1 * np.exp(-k1 * (t_s - t1)) + a2 * np.exp(-k2 * (t_s - t1))
    return np.where(t_s <= t1, rise, decay)


def mcgrath_aif(*, delay_s: float = 0.0) -> AIF:
    """Preclinical (rat) population AIF of McGrath et al. (2009), model B (plasma, mM).

    A linear rise to 5.21 mM over 7 s, then
    ``3.4 exp(-0.045 t') + 1.81 exp(-0.0015 t')`` with ``t'`` seconds after
    the peak. ``delay_s`` as in :func:`parker_aif`.
    """
    return AIF(function=_mcgrath, delay_s=float(delay_s), name="McGrath 2009 (rat, model B)",
               breakpoints_s=np.array([7.0]))


def measured_aif(
    concentration: Image,
    roi: Image,
    *,
    hematocrit: float = 0.42,
    name: str = "measured",
) -> AIF:
    """An AIF from the mean concentration in an arterial ROI.

    Parameters
    ----------
    concentration : Image
        Concentration series (mM), e.g. from :func:`signal_to_concentration`.
    roi : Image
        Boolean mask of arterial voxels on the same grid.
    hematocrit : float
        The ROI holds whole blood: ``Cp = Cb / (1 - Hct)``; 0 keeps it.

    Returns
    -------
    AIF
        Sampled at the frame times (linear between frames).
    """
    from ._curves import curves

    require_series(concentration, "concentration")
    if not 0 <= hematocrit < 1:
        raise ValueError(f"hematocrit must be in [0, 1), got {hematocrit}")
    table = curves(concentration, roi.with_array(np.asarray(roi.array).astype(bool)))
    values = table["mean"].to_numpy(dtype=float)
    if not np.all(np.isfinite(values)):
        raise ValueError(
            "the AIF ROI has frames without finite concentrations (NaN where the signal "
            "could not be converted); check the ROI and the conversion parameters"
        )
    return AIF(times_s=table["time_s"].to_numpy(dtype=float), values=values / (1 - hematocrit),
               name=name)
