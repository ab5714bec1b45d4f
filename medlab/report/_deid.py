"""Keep patient identifiers out of reports: pseudonyms for known identifiers.

A :class:`Pseudonyms` object knows a set of identifiers (patient IDs, names,
birth dates) and what replaces each: the pseudonym from a de-identification
mapping (:func:`medlab.cohort.export`'s mapping table) where one is given,
else a hash-based pseudonym (``ANON-`` + 12 base-32 characters; keyed with
HMAC-SHA256 when a key is given -- with the export's key the pseudonyms are
the export's). Birth dates are replaced by ``[birth date removed]``.

Identifiers become known from the run parameters whose names say so
(``patient_id``, ``patient``, ``subject``, ``birth_date``, ...), from the
result tables' identifier columns (:data:`medlab.cohort.PHI_COLUMNS` and
the same names), and, in a batch, from the cohort index (the patients'
IDs, names and birth dates). The report then replaces every occurrence of a
known identifier in the executed notebook (cell sources and text/HTML
outputs), in the displayed parameters and provenance, and in the cohort
table. Pixels of figures cannot be searched: a figure whose title shows a
patient ID keeps it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["Pseudonyms", "identifier_kind"]

BIRTH_DATE_REPLACEMENT = "[birth date removed]"
#: identifiers shorter than this are replaced only as whole table cells / parameter values
_MIN_FREE_TEXT = 3
_TEXT_MIMES = ("text/plain", "text/html", "text/markdown", "text/latex",
               "application/json")


def identifier_kind(name: str) -> str | None:
    """``'birth_date'``, ``'name'``, ``'id'`` or None: what a column/parameter name holds."""
    n = str(name).lower().replace(" ", "_").replace("-", "_")
    if "birth" in n or n in ("dob", "date_of_birth"):
        return "birth_date"
    if n in ("patient_name", "patients_name", "patientname", "name_of_patient", "subject_name"):
        return "name"
    if n in ("pid", "mrn", "accession", "accession_number", "institution", "patient", "subject"):
        return "id"
    if re.search(r"(^|_)(patient|subject)(_?id|_?ids)?$", n) or n in ("patientid",):
        return "id"
    return None


def _date_forms(value: Any) -> set[str]:
    """A birth date in the forms it is likely displayed in (ISO, DICOM DA)."""
    forms = {str(value)}
    try:
        d = pd.Timestamp(str(value)).date()
    except (ValueError, TypeError):
        return forms
    forms |= {d.isoformat(), d.strftime("%Y%m%d"), d.strftime("%d.%m.%Y"), d.strftime("%m/%d/%Y"),
              repr(d), f"Timestamp('{d.isoformat()} 00:00:00')"}
    return forms


@dataclass
class Pseudonyms:
    """Known identifiers and their replacements.

    Parameters
    ----------
    key : str or bytes, optional
        Secret for keyed (HMAC-SHA256) pseudonyms; the key given to
        :func:`medlab.cohort.export` gives the export's pseudonyms. Without
        a key, pseudonyms are plain SHA-256 hashes: they hide identifiers
        from readers but anyone who can guess an ID can recompute its
        pseudonym.
    mapping : dict, optional
        Original -> pseudonym pairs that take precedence (see
        :meth:`from_mapping`).
    """

    key: str | bytes | None = field(default=None, repr=False)
    mapping: dict[str, str] = field(default_factory=dict, repr=False)
    known: dict[str, str] = field(default_factory=dict, repr=False)
    _compiled: tuple[int, re.Pattern[str] | None] = field(default=(-1, None), repr=False,
                                                           compare=False)

    def __repr__(self) -> str:  # never the identifiers or the key
        return (f"Pseudonyms({len(self.known)} known identifiers, {len(self.mapping)} from a "
                f"mapping, {'keyed' if self.key else 'unkeyed'})")

    def __post_init__(self) -> None:
        if isinstance(self.key, str):
            self.key = self.key.encode("utf-8")
        if self.key is not None and not isinstance(self.key, bytes):
            raise TypeError(f"key must be a str or bytes (a secret), got {type(self.key).__name__}")
        self.mapping = {str(k): str(v) for k, v in dict(self.mapping).items()}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_mapping(cls, mapping: Any, *, key: str | bytes | None = None) -> Pseudonyms:
        """Pseudonyms from an export mapping table (CSV/Parquet path or DataFrame) or a dict.

        The table needs ``original`` and ``replacement`` columns; when it has a
        ``kind`` column (as :func:`medlab.cohort.export` writes), only rows of
        kind ``patient`` are used.
        """
        if mapping is None:
            return cls(key=key)
        if isinstance(mapping, Pseudonyms):
            return mapping
        if isinstance(mapping, Mapping):
            return cls(key=key, mapping=dict(mapping))
        if isinstance(mapping, (str, os.PathLike)):
            path = Path(mapping)
            if not path.is_file():
                raise FileNotFoundError(
                    f"no pseudonym mapping at {str(path)!r}; pass the mapping table written by "
                    "medlab.cohort.export(..., mapping=PATH) (CSV or Parquet)")
            table = (pd.read_parquet(path) if path.suffix.lower() == ".parquet"
                     else pd.read_csv(path, dtype=str, keep_default_na=False))
        elif isinstance(mapping, pd.DataFrame):
            table = mapping
        else:
            raise TypeError(
                "mapping must be a path to an export mapping table, a DataFrame with original/"
                f"replacement columns, or a dict; got {type(mapping).__name__}")
        missing = {"original", "replacement"} - set(table.columns)
        if missing:
            raise ValueError(
                f"the mapping table has no {sorted(missing)} column(s) (columns: "
                f"{list(table.columns)[:8]}); use the table medlab.cohort.export writes")
        if "kind" in table.columns:
            table = table[table["kind"].astype(str) == "patient"]
        return cls(key=key, mapping=dict(zip(table["original"].astype(str),
                                             table["replacement"].astype(str), strict=True)))

    # ------------------------------------------------------------------ pseudonyms
    def pseudonym(self, original: Any) -> str:
        """The pseudonym of one identifier (mapping first, else a hash)."""
        text = str(original).strip()
        if text in self.mapping:
            return self.mapping[text]
        msg = b"patient\x00" + text.encode("utf-8", "surrogateescape")
        digest = (hmac.new(self.key, msg, hashlib.sha256).digest() if self.key
                  else hashlib.sha256(b"medlab-report\x00" + msg).digest())
        return "ANON-" + base64.b32encode(digest).decode()[:12]

    def add(self, value: Any, kind: str = "id", *, same_as: Any = None) -> str | None:
        """Make ``value`` a known identifier; returns its replacement.

        ``kind`` is ``'id'``, ``'name'`` or ``'birth_date'``. A name given
        ``same_as=<patient id>`` gets that patient's pseudonym.
        """
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            return None
        text = str(value).strip()
        if not text or text in self.known:
            return self.known.get(text)
        if kind == "birth_date":
            for form in _date_forms(value):
                self.known.setdefault(form, BIRTH_DATE_REPLACEMENT)
            return BIRTH_DATE_REPLACEMENT
        repl = self.pseudonym(same_as if same_as is not None else text)
        self.known[text] = repl
        if kind == "name" and "^" in text:  # DICOM PN: also the forms people print
            parts = [p for p in text.split("^") if p]
            for alt in (" ".join(parts), " ".join(reversed(parts[:2])), ", ".join(parts[:2])):
                self.known.setdefault(alt, repl)
        return repl

    def add_parameters(self, parameters: Mapping[str, Any]) -> None:
        """Learn the identifiers among run parameters (by parameter name)."""
        for name, value in parameters.items():
            kind = identifier_kind(name)
            if kind is None:
                continue
            for v in (value if isinstance(value, (list, tuple)) else [value]):
                if isinstance(v, (str, int)) and not isinstance(v, bool):
                    self.add(v, kind)

    def add_table(self, table: pd.DataFrame) -> None:
        """Learn the identifiers in a table's identifier columns."""
        for column in table.columns:
            kind = identifier_kind(column)
            if kind is not None:
                for v in pd.unique(table[column].dropna()):
                    self.add(v, kind)

    def add_patients(self, patients: pd.DataFrame) -> None:
        """Learn patients from an index's ``patients`` table (id, name, birth date)."""
        for row in patients.itertuples(index=False):
            pid = getattr(row, "patient_id", None)
            self.add(pid, "id")
            name = getattr(row, "patient_name", None)
            if name is not None and not pd.isna(name) and str(name).strip():
                self.add(name, "name", same_as=pid if pid is not None and not pd.isna(pid)
                         else None)
            self.add(getattr(row, "patient_birth_date", None), "birth_date")

    # ------------------------------------------------------------------ replacing
    def _pattern(self) -> re.Pattern[str] | None:
        if self._compiled[0] == len(self.known):  # identifiers are only ever added
            return self._compiled[1]
        words = sorted((k for k in self.known if len(k) >= _MIN_FREE_TEXT), key=len, reverse=True)
        pattern = re.compile(r"(?<![A-Za-z0-9])(" + "|".join(map(re.escape, words))
                             + r")(?![A-Za-z0-9])") if words else None
        self._compiled = (len(self.known), pattern)
        return pattern

    def text(self, text: str) -> str:
        """``text`` with every known identifier replaced."""
        pattern = self._pattern()
        if pattern is None or not isinstance(text, str):
            return text
        return pattern.sub(lambda m: self.known[m.group(1)], text)

    def value(self, value: Any) -> Any:
        """A parameter or table value with identifiers replaced (recursively for containers)."""
        if isinstance(value, str):
            return self.known.get(value.strip(), self.text(value))
        if isinstance(value, (int, dt.date)) and not isinstance(value, bool) \
                and str(value) in self.known:
            return self.known[str(value)]
        if isinstance(value, Mapping):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.value(v) for v in value)
        return value

    def parameters(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """Parameters as shown in a report: identifier values become pseudonyms."""
        out = {}
        for name, value in parameters.items():
            kind = identifier_kind(name)
            if kind == "birth_date" and value is not None:
                out[name] = BIRTH_DATE_REPLACEMENT
            elif kind is not None and isinstance(value, (str, int)) and not isinstance(value, bool):
                out[name] = self.known.get(str(value).strip()) or self.pseudonym(value)
            else:
                out[name] = self.value(value)
        return out

    def table(self, table: pd.DataFrame) -> pd.DataFrame:
        """A copy of ``table`` with identifier columns and known identifiers replaced."""
        out = table.copy()
        for column in out.columns:
            kind = identifier_kind(column)
            if kind == "birth_date":
                out[column] = out[column].map(lambda v: v if pd.isna(v) else BIRTH_DATE_REPLACEMENT)
            elif kind is not None:
                out[column] = out[column].map(
                    lambda v: v if pd.isna(v) else (self.known.get(str(v).strip())
                                                     or self.pseudonym(v)))
            elif (pd.api.types.is_object_dtype(out[column])
                  or pd.api.types.is_string_dtype(out[column])):
                out[column] = out[column].map(self.value)
        return out

    def notebook(self, nb: Any) -> Any:
        """Replace known identifiers in a notebook's sources and text outputs, in place."""
        if self._pattern() is None:
            return nb
        for cell in nb.cells:
            cell.source = self.text(cell.source)
            for output in cell.get("outputs", []):
                if "text" in output:
                    output["text"] = self.text(output["text"])
                if "traceback" in output:
                    output["traceback"] = [self.text(t) for t in output["traceback"]]
                if "evalue" in output:
                    output["evalue"] = self.text(output["evalue"])
                data = output.get("data", {})
                for mime in _TEXT_MIMES:
                    if mime in data:
                        data[mime] = self._deep(data[mime])
        return nb

    def _deep(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self._deep(v) for v in value]
        if isinstance(value, dict):
            return {k: self._deep(v) for k, v in value.items()}
        return value

    def update(self, other: Iterable[tuple[str, str]]) -> None:
        """Add (original, replacement) pairs learned elsewhere."""
        for k, v in other:
            self.known.setdefault(k, v)
