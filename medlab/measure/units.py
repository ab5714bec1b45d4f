"""Units as people read them: one mapping from coded units to display strings.

medlab keeps units machine-readable where they are stored (UCUM codes in
DICOM SR, Parametric Maps and RWVM; DICOM's ``Units`` (0054,1001) in PET
headers; ``meta['units']`` of an image). Every table, plot, viewer and
report shows them through :func:`display_units`, so a Hounsfield unit reads
"HU" everywhere, never the UCUM code ``[hnsf'U]``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DISPLAY_UNITS", "display_units"]

#: coded unit -> display string: UCUM codes (DICOM CID 82/83/84/85) and DICOM PET Units
DISPLAY_UNITS: dict[str, str] = {
    # UCUM (written by medlab.measure.write_sr, to_suv, timeseries parametric maps)
    "[hnsf'U]": "HU",
    "g/ml{SUVbw}": "SUVbw",
    "g/ml{SUVlbm}": "SUVlbm",
    "g/ml{SUVlbm(Janma)}": "SUVlbm (Janmahasatian)",
    "cm2/ml{SUVbsa}": "SUVbsa",
    "Bq/ml": "Bq/ml",
    "mm3": "mm³",
    "mm2": "mm²",
    "cm3": "cm³",
    "ml": "ml",
    "mm": "mm",
    "deg": "°",
    "/min": "/min",
    "mmol/L": "mM",
    "s": "s",
    "%": "%",
    "1": "",
    "{ratio}": "",
    # DICOM PET Units (0054,1001), as they arrive in meta['units']
    "BQML": "Bq/ml",
    "CNTS": "counts",
    "GML": "SUV",  # values already SUV, in g/ml (body weight, unless SUVType says otherwise)
    "CM2ML": "SUVbsa",
}


def display_units(units: Any) -> str:
    """The display string of a unit: a UCUM code, a DICOM PET unit, or medlab's own name.

    Parameters
    ----------
    units : str or None
        ``"[hnsf'U]"``, ``"g/ml{SUVbw}"``, ``"BQML"``, ``"HU"``, ``"SUVbw"``...
        Unknown units come back unchanged; None and NaN give ``""``.

    Returns
    -------
    str

    Examples
    --------
    >>> display_units("[hnsf'U]")
    'HU'
    >>> display_units("SUVbw")
    'SUVbw'
    """
    if units is None or (isinstance(units, float) and units != units):
        return ""
    text = str(units).strip()
    return DISPLAY_UNITS.get(text, text)
