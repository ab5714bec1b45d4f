"""Patient identifiers: one pseudonym, one display name, and the check that none leaves.

Everything in medlab that shows, exports or reports a patient goes through
this module:

- :func:`pseudonym` is the one pseudonym formula: ``ANON-`` followed by 12
  base-32 characters of HMAC-SHA256(key, ``patient`` NUL id) -- with the key
  of :func:`medlab.cohort.export` it is the export's Patient ID, so reports,
  exploration tables and exports of one key agree. Without a key it is a
  plain (salted) SHA-256: it hides identifiers from readers, but anyone who
  can guess an ID can recompute it.
- :func:`display_name` is how a notebook shows a patient (titles, prints,
  captions): the pseudonym, unless identifiers were asked for
  (``configure(show_phi=True)``, or a report run with ``show_phi=True``).
  Every medlab viewer, gallery and static plot title follows the same rule
  (:func:`display_text`).
- :class:`Pseudonyms` knows a set of identifiers (IDs, names in their DICOM
  and printed forms, birth dates, accession numbers, path components that
  contain them) and replaces them in text, tables and notebooks.
- :func:`scan_files` searches report outputs (HTML, PDF text, JSON, CSV,
  Parquet, notebooks) for every known identifier; a report run fails when
  one is found (:class:`medlab.errors.IdentifierLeakError`).

Examples
--------
>>> from medlab import privacy
>>> privacy.pseudonym("STS_019")
'ANON-...'
>>> privacy.pseudonym("STS_019", key="a-secret-of-at-least-16-bytes")[:5]
'ANON-'
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BIRTH_DATE_REPLACEMENT",
    "ENV_CONTEXT",
    "Pseudonyms",
    "configure",
    "display_name",
    "display_names",
    "display_text",
    "identifier_kind",
    "is_pseudonym",
    "pseudonym",
    "reset",
    "scan_files",
    "session",
    "show_phi",
    "watch_index",
]

BIRTH_DATE_REPLACEMENT = "[birth date removed]"
#: environment variable naming the privacy context file of a report run's kernel
ENV_CONTEXT = "MEDLAB_PRIVACY_CONTEXT"
#: identifiers shorter than this are replaced only as whole table cells / parameter values
_MIN_FREE_TEXT = 3
_TEXT_MIMES = ("text/plain", "text/html", "text/markdown", "text/latex",
               "application/json")
_PSEUDONYM = re.compile(r"ANON-[A-Z2-7]{12}")
#: header attributes that identify a patient, learned from the DICOM files a run reads
_DICOM_IDENTIFIERS = ("PatientID", "PatientName", "OtherPatientIDs", "OtherPatientNames",
                      "OtherPatientIDsSequence", "PatientBirthDate", "PatientBirthName",
                      "PatientMotherBirthName", "AccessionNumber", "IssuerOfPatientID")


def pseudonym(value: Any, *, key: str | bytes | None = None) -> str:
    """The pseudonym of one patient identifier: ``ANON-`` + 12 base-32 characters.

    Parameters
    ----------
    value : str or int
        The identifier (surrounding blanks are ignored).
    key : str or bytes, optional
        Secret for keyed (HMAC-SHA256) pseudonyms; the key given to
        :func:`medlab.cohort.export` gives the export's pseudonyms.

    Returns
    -------
    str

    Examples
    --------
    >>> pseudonym("SYN001") == pseudonym(" SYN001 ")
    True
    >>> pseudonym("SYN001") != pseudonym("SYN001", key=b"0123456789abcdef")
    True
    """
    if isinstance(key, str):
        key = key.encode("utf-8")
    msg = b"patient\x00" + str(value).strip().encode("utf-8", "surrogateescape")
    digest = (hmac.new(key, msg, hashlib.sha256).digest() if key
              else hashlib.sha256(b"medlab-report\x00" + msg).digest())
    return "ANON-" + base64.b32encode(digest).decode()[:12]


def is_pseudonym(value: Any) -> bool:
    """True when ``value`` is a medlab pseudonym (``ANON-`` + 12 base-32 characters)."""
    return isinstance(value, str) and _PSEUDONYM.fullmatch(value.strip()) is not None


def identifier_kind(name: str) -> str | None:
    """``'birth_date'``, ``'name'``, ``'id'`` or None: what a column/parameter name holds."""
    n = str(name).lower().replace(" ", "_").replace("-", "_")
    if "birth" in n or n in ("dob", "date_of_birth"):
        return "birth_date"
    if n in ("patient_name", "patients_name", "patientname", "name_of_patient", "subject_name",
             "other_patient_names"):
        return "name"
    if n in ("pid", "mrn", "accession", "accession_number", "accessionnumber", "institution",
             "patient", "patients", "subject", "subjects", "other_patient_ids",
             "otherpatientids"):
        return "id"
    if re.search(r"(^|_)(patient|subject)s?(_?id|_?ids)?$", n) or n in ("patientid",):
        return "id"
    return None


def _date_forms(value: Any) -> set[str]:
    """A birth date in the forms it is likely displayed in (ISO, DICOM DA, ...)."""
    import pandas as pd

    forms = {str(value).strip()}
    try:
        d = pd.Timestamp(str(value).strip()).date()
    except (ValueError, TypeError):
        return forms
    forms |= {d.isoformat(), d.strftime("%Y%m%d"), d.strftime("%d.%m.%Y"), d.strftime("%m/%d/%Y"),
              d.strftime("%Y.%m.%d"), d.strftime("%d/%m/%Y"), repr(d),
              f"Timestamp('{d.isoformat()} 00:00:00')"}
    return forms


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _name_forms(text: str) -> set[str]:
    """A DICOM person name in the forms people print, and its parts (3+ characters)."""
    forms = {text}
    for group in text.split("="):  # alphabetic, ideographic, phonetic
        parts = [p.strip() for p in group.split("^") if p.strip()]
        if not parts:
            continue
        forms |= {" ".join(parts), " ".join(reversed(parts[:2])), ", ".join(parts[:2]),
                  "^".join(parts), "_".join(parts)}
        forms |= {p for p in parts if len(p) >= _MIN_FREE_TEXT}
        for p in parts:  # "van der Berg" -> also its words
            forms |= {w for w in re.split(r"[\s,.\-]+", p) if len(w) >= 4}
    return {f for f in forms if f.strip()}


@dataclass
class Pseudonyms:
    """Known identifiers and their replacements.

    Parameters
    ----------
    key : str or bytes, optional
        Secret for keyed pseudonyms (see :func:`pseudonym`).
    mapping : dict, optional
        Original -> pseudonym pairs that take precedence (see
        :meth:`from_mapping`).

    Notes
    -----
    Identifiers are matched case-insensitively and as whole words (not inside
    a longer run of letters and digits); identifiers shorter than 3
    characters only as whole table cells and parameter values.
    """

    key: str | bytes | None = field(default=None, repr=False)
    mapping: dict[str, str] = field(default_factory=dict, repr=False)
    known: dict[str, str] = field(default_factory=dict, repr=False)
    kinds: dict[str, str] = field(default_factory=dict, repr=False)
    _lower: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
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
        self.mapping = {str(k).strip(): str(v) for k, v in dict(self.mapping).items()}
        known, self.known = dict(self.known), {}
        for k, v in known.items():
            self._remember(k, v, self.kinds.get(k, "id"))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_mapping(cls, mapping: Any, *, key: str | bytes | None = None) -> Pseudonyms:
        """Pseudonyms from an export mapping table (CSV/Parquet path or DataFrame) or a dict.

        The table needs ``original`` and ``replacement`` columns; when it has a
        ``kind`` column (as :func:`medlab.cohort.export` writes), only rows of
        kind ``patient`` are used.
        """
        import pandas as pd

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

    def to_context(self) -> dict[str, Any]:
        """A JSON-ready copy (key included: keep it private) for :meth:`from_context`."""
        return {"key": self.key.hex() if isinstance(self.key, bytes) else None,
                "mapping": self.mapping, "known": self.known, "kinds": self.kinds}

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> Pseudonyms:
        """The inverse of :meth:`to_context`."""
        key = context.get("key")
        return cls(key=bytes.fromhex(key) if key else None, mapping=context.get("mapping") or {},
                   known=context.get("known") or {}, kinds=context.get("kinds") or {})

    # ------------------------------------------------------------------ pseudonyms
    def pseudonym(self, original: Any) -> str:
        """The pseudonym of one identifier (mapping first, else :func:`pseudonym`)."""
        text = str(original).strip()
        if text in self.mapping:
            return self.mapping[text]
        return pseudonym(text, key=self.key)

    def is_replacement(self, value: Any) -> bool:
        """True when ``value`` is already a pseudonym or replacement (never replaced again)."""
        if not isinstance(value, str):
            return False
        v = value.strip()
        return is_pseudonym(v) or v == BIRTH_DATE_REPLACEMENT or v in self.mapping.values()

    def _remember(self, text: str, replacement: str, kind: str) -> None:
        if not text.strip() or self.is_replacement(text):
            return
        self.known.setdefault(text, replacement)
        self.kinds.setdefault(text, kind)
        self._lower.setdefault(text.lower(), self.known[text])

    def add(self, value: Any, kind: str = "id", *, same_as: Any = None) -> str | None:
        """Make ``value`` a known identifier; returns its replacement.

        ``kind`` is ``'id'``, ``'name'``, ``'birth_date'`` or ``'path'``. A
        name (or other identifier) given ``same_as=<patient id>`` gets that
        patient's pseudonym.
        """
        if _missing(value):
            return None
        text = str(value).strip()
        if self.is_replacement(text):
            return text
        if kind == "birth_date":
            for form in _date_forms(value):
                self._remember(form, BIRTH_DATE_REPLACEMENT, "birth_date")
            return BIRTH_DATE_REPLACEMENT
        if text.lower() in self._lower and same_as is None:
            return self._lower[text.lower()]
        repl = self.pseudonym(same_as if not _missing(same_as) else text)
        self._remember(text, repl, kind)
        if kind == "name":
            for alt in _name_forms(text):
                self._remember(alt, repl, "name")
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

    def add_table(self, table: Any) -> None:
        """Learn the identifiers in a table's identifier columns."""
        import pandas as pd

        for column in table.columns:
            kind = identifier_kind(column)
            if kind is not None:
                for v in pd.unique(table[column].dropna()):
                    if (isinstance(v, (str, int)) and not isinstance(v, bool)) or kind == "birth_date":
                        self.add(v, kind)

    def add_patients(self, patients: Any) -> None:
        """Learn patients from an index's ``patients`` table (id, name, birth date)."""
        for row in patients.itertuples(index=False):
            pid = getattr(row, "patient_id", None)
            self.add(pid, "id")
            self.add(getattr(row, "patient_name", None), "name", same_as=pid)
            self.add(getattr(row, "patient_birth_date", None), "birth_date")

    def add_index(self, index: Any) -> None:
        """Learn every patient of a cohort index: IDs, names, birth dates, accession
        numbers, and the folder names that contain them."""
        self.add_index_rows(*_index_identifiers(index))

    def add_index_rows(self, rows: Any, folders: Iterable[str]) -> None:
        for row in rows.itertuples(index=False):
            pid = row.patient_id if not _missing(row.patient_id) else None
            self.add(pid, "id")
            self.add(row.patient_name, "name", same_as=pid)
            self.add(row.patient_birth_date, "birth_date")
            self.add(row.accession_number, "id", same_as=pid)
        self.add_path_components(folders)

    def add_dicom_files(self, paths: Iterable[str | os.PathLike]) -> int:
        """Learn the identifiers in the headers of DICOM files (others are ignored).

        Patient ID, names (also other and birth names), other patient IDs,
        birth date, accession number and issuer of the ID. Returns the number
        of DICOM files read.
        """
        import pydicom

        n = 0
        for p in paths:
            try:
                with open(p, "rb") as f:
                    head = f.read(132)
                if head[128:132] != b"DICM" and Path(p).suffix.lower() not in (".dcm", ".ima"):
                    continue
                ds = pydicom.dcmread(p, stop_before_pixels=True, force=True,
                                     specific_tags=list(_DICOM_IDENTIFIERS))
            except Exception:  # not DICOM, unreadable: nothing to learn
                continue
            n += 1
            self.add_dataset(ds)
        return n

    def add_dataset(self, ds: Any) -> None:
        """Learn the identifiers of one pydicom dataset (see :meth:`add_dicom_files`)."""
        def values(keyword: str) -> list[str]:
            v = ds.get(keyword)
            if v is None or v == "":
                return []
            items = list(v) if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue" \
                else [v]
            return [str(x).strip() for x in items if str(x).strip()]

        pids = values("PatientID")
        pid = pids[0] if pids else None
        if pid:
            self.add(pid, "id")
        for name in values("PatientName") + values("OtherPatientNames") + \
                values("PatientBirthName") + values("PatientMotherBirthName"):
            self.add(name, "name", same_as=pid or name)
        for other in values("OtherPatientIDs") + values("AccessionNumber") + \
                values("IssuerOfPatientID"):
            self.add(other, "id", same_as=pid or other)
        for item in ds.get("OtherPatientIDsSequence", None) or []:
            for other in [str(item.get("PatientID", "") or "").strip()]:
                self.add(other, "id", same_as=pid or other)
        for birth in values("PatientBirthDate"):
            self.add(birth, "birth_date")

    def add_path_components(self, paths: Iterable[str | os.PathLike]) -> None:
        """Learn folder and file names that contain a known identifier (as identifiers)."""
        words = sorted(((k.lower(), v) for k, v in self.known.items()
                        if len(k) >= _MIN_FREE_TEXT and self.kinds.get(k) != "path"),
                       key=lambda kv: len(kv[0]), reverse=True)
        if not words:
            return
        seen: set[str] = set()
        for p in paths:
            for part in Path(p).parts:
                if part in seen or part in ("/", "\\"):
                    continue
                seen.add(part)
                low = part.lower()
                hit = next((v for w, v in words if w in low), None)
                if hit is not None:
                    self._remember(part, self.pseudonym(part) if hit == BIRTH_DATE_REPLACEMENT
                                   else hit, "path")

    def update(self, other: Iterable[tuple[str, ...]]) -> None:
        """Add (original, replacement[, kind]) tuples learned elsewhere."""
        for k, v, *kind in other:
            self._remember(k, v, kind[0] if kind else "id")

    # ------------------------------------------------------------------ replacing
    def _pattern(self) -> re.Pattern[str] | None:
        if self._compiled[0] == len(self.known):  # identifiers are only ever added
            return self._compiled[1]
        words = sorted({k.lower() for k in self.known if len(k) >= _MIN_FREE_TEXT},
                       key=len, reverse=True)
        pattern = re.compile(r"(?<![A-Za-z0-9])(" + "|".join(map(re.escape, words))
                             + r")(?![A-Za-z0-9])", re.IGNORECASE) if words else None
        self._compiled = (len(self.known), pattern)
        return pattern

    def text(self, text: str) -> str:
        """``text`` with every known identifier replaced."""
        pattern = self._pattern()
        if pattern is None or not isinstance(text, str):
            return text
        return pattern.sub(lambda m: self._lower[m.group(1).lower()], text)

    def value(self, value: Any) -> Any:
        """A parameter or table value with identifiers replaced (recursively for containers)."""
        if isinstance(value, str):
            return self._lower.get(value.strip().lower(), self.text(value))
        if isinstance(value, (int, dt.date)) and not isinstance(value, bool) \
                and str(value).lower() in self._lower:
            return self._lower[str(value).lower()]
        if isinstance(value, Mapping):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.value(v) for v in value)
        return value

    def _replace_identifier(self, value: Any) -> Any:
        if _missing(value) or self.is_replacement(value):
            return value
        return self._lower.get(str(value).strip().lower()) or self.pseudonym(value)

    def parameters(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """Parameters as shown in a report: identifier values become pseudonyms."""
        out: dict[str, Any] = {}
        for name, value in parameters.items():
            kind = identifier_kind(name)
            if kind == "birth_date" and value is not None:
                out[name] = BIRTH_DATE_REPLACEMENT
            elif kind is not None and isinstance(value, (str, int)) and not isinstance(value, bool):
                out[name] = self._replace_identifier(value)
            elif kind is not None and isinstance(value, (list, tuple)):
                out[name] = type(value)(self._replace_identifier(v) if isinstance(v, (str, int))
                                        else self.value(v) for v in value)
            else:
                out[name] = self.value(value)
        return out

    def table(self, table: Any) -> Any:
        """A copy of ``table`` with identifier columns and known identifiers replaced."""
        import pandas as pd

        if isinstance(table, pd.Series):
            return self.table(table.to_frame()).iloc[:, 0].rename(self.value(table.name))
        out = table.copy()
        out.columns = [self.value(c) if isinstance(c, str) else c for c in out.columns]
        for i, column in enumerate(table.columns):
            kind = identifier_kind(column) if isinstance(column, str) else None
            col = out.iloc[:, i]
            if kind == "birth_date":
                new = col.map(lambda v: v if _missing(v) else BIRTH_DATE_REPLACEMENT)
            elif kind is not None:
                new = col.map(self._replace_identifier)
            elif pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col) \
                    or isinstance(col.dtype, pd.CategoricalDtype):
                new = col.astype(object).map(self.value)
            else:
                continue
            out.isetitem(i, new.astype(object) if kind is not None else new)
        if not isinstance(out.index, pd.RangeIndex):
            out.index = out.index.map(lambda v: self._replace_identifier(v)
                                      if isinstance(v, (str, int)) and not isinstance(v, bool)
                                      and (str(v).lower() in self._lower
                                           or identifier_kind(str(table.index.name or "")))
                                      else self.value(v) if isinstance(v, (str, tuple)) else v)
            if table.index.name is not None:
                out.index.name = self.value(table.index.name)
        return out

    def notebook(self, nb: Any) -> Any:
        """Replace known identifiers in a notebook's sources, text outputs and metadata."""
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
                for mime in list(data):
                    if mime in _TEXT_MIMES or mime.endswith("+json"):
                        data[mime] = self._deep(data[mime])
        if "widgets" in nb.get("metadata", {}):  # widget state: titles, captions, ...
            nb.metadata["widgets"] = self._deep(nb.metadata["widgets"])
        return nb

    def _deep(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self._deep(v) for v in value]
        if isinstance(value, dict):
            return {k: self._deep(v) for k, v in value.items()}
        return value

    # ------------------------------------------------------------------ searching
    def find(self, text: str) -> list[tuple[int, str]]:
        """(offset, identifier as known) of every known identifier in ``text``.

        Also finds an identifier of 8+ characters cut short by a display
        (its first 6+ characters followed by ``...`` or ``…``).
        """
        pattern = self._pattern()
        if pattern is None or not text:
            return []
        found = [(m.start(), self._original(m.group(1))) for m in pattern.finditer(text)]
        for m in _TRUNCATED.finditer(text):
            stem = m.group(1).lower()
            hit = next((k for k in self.known if len(k) >= 8 and self.kinds.get(k) != "path"
                        and k.lower().startswith(stem) and len(stem) < len(k)), None)
            if hit is not None:
                found.append((m.start(), hit))
        return sorted(found)

    def _original(self, matched: str) -> str:
        low = matched.lower()
        return next((k for k in self.known if k.lower() == low), matched)


_TRUNCATED = re.compile(r"(?<![A-Za-z0-9])([A-Za-z0-9][A-Za-z0-9_^.-]{5,})(?:\.\.\.|…)")


# ---------------------------------------------------------------------- the session
_lock = threading.Lock()
_state: dict[str, Any] = {"pseudonyms": None, "show_phi": None, "sources": [], "read": set()}


def session(*, refresh: bool = True) -> Pseudonyms:
    """The identifiers and pseudonyms of this Python session.

    In a report run's kernel they come from the run (its key or mapping, the
    identifiers among its parameters, and the DICOM files the notebook reads);
    elsewhere from :func:`configure` (unkeyed by default). ``refresh=False``
    re-reads watched indexes at most once a second (for callers that run
    very often, such as every text matplotlib draws).
    """
    with _lock:
        if _state["pseudonyms"] is None:
            context_file = os.environ.get(ENV_CONTEXT)
            context: dict[str, Any] = {}
            if context_file and Path(context_file).is_file():
                context = json.loads(Path(context_file).read_text("utf-8"))
            _state["pseudonyms"] = Pseudonyms.from_context(context)
            if _state["show_phi"] is None:
                _state["show_phi"] = bool(context.get("show_phi", False))
        pseudo: Pseudonyms = _state["pseudonyms"]
        _learn_from_indexes(pseudo, force=refresh)
        new: list[str] = []
        for source in _state["sources"]:
            try:
                new += [p for p in source() if p not in _state["read"]]
            except Exception:  # a source that fails teaches nothing
                continue
        if new:
            _state["read"].update(new)
            pseudo.add_dicom_files(new)
            pseudo.add_path_components(new)
        _persist(pseudo)
        return pseudo


def _persist(pseudo: Pseudonyms) -> None:
    """In a report kernel: hand what the session learned to the run (its final check)."""
    context_file = os.environ.get(ENV_CONTEXT)
    if not context_file or _state.get("persisted") == len(pseudo.known):
        return
    target = Path(context_file).with_name("learned.json")
    try:
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps({"known": pseudo.known, "kinds": pseudo.kinds}), "utf-8")
        os.replace(tmp, target)
        _state["persisted"] = len(pseudo.known)
    except OSError:  # the run's private folder is gone: nothing to hand over
        pass


def learned_in_kernel(context_file: str | os.PathLike) -> list[tuple[str, str, str]]:
    """(identifier, replacement, kind) a report kernel learned (see :func:`session`)."""
    target = Path(context_file).with_name("learned.json")
    if not target.is_file():
        return []
    data = json.loads(target.read_text("utf-8"))
    return [(k, v, data["kinds"].get(k, "id")) for k, v in data["known"].items()]


def _index_identifiers(index: Any) -> tuple[Any, list[str]]:
    rows = index.sql("SELECT DISTINCT patient_id, patient_name, patient_birth_date, "
                     "accession_number FROM instances")
    folders = index.sql("SELECT DISTINCT regexp_replace(path, '[^/]*$', '') AS d "
                        "FROM instances")["d"]
    return rows, [d for d in folders if isinstance(d, str)]


def watch_index(index: Any) -> None:
    """Learn the patients of a cohort index (IDs, names, birth dates, accession numbers,
    folders) whenever this session displays something; medlab's Index calls this."""
    import weakref

    with _lock:
        _state.setdefault("indexes", []).append([weakref.ref(index), 0.0, -1])


def _learn_from_indexes(pseudo: Pseudonyms, *, force: bool) -> None:
    import time

    for entry in list(_state.get("indexes", [])):
        index = entry[0]()
        if index is None:
            _state["indexes"].remove(entry)
            continue
        if not force and time.monotonic() - entry[1] < 1.0:
            continue
        entry[1] = time.monotonic()
        try:
            n = int(index.sql("SELECT count(*) AS n FROM instances")["n"].iloc[0])
            if n == entry[2]:
                continue
            rows, folders = _index_identifiers(index)
        except Exception:  # closed, or not an index: nothing to learn
            continue
        entry[2] = n
        pseudo.add_index_rows(rows, folders)


def configure(*, key: str | bytes | None = None, mapping: Any = None,
              show_phi: bool | None = None) -> Pseudonyms:
    """Set how this session shows patients.

    Parameters
    ----------
    key : str or bytes, optional
        Secret for keyed pseudonyms (the key of :func:`medlab.cohort.export`
        gives the export's pseudonyms).
    mapping : path, DataFrame or dict, optional
        An export mapping table (see :meth:`Pseudonyms.from_mapping`).
    show_phi : bool, optional
        Show real identifiers in display names, titles and tables
        (default False: pseudonyms).

    Returns
    -------
    Pseudonyms
        The session's identifiers (see :func:`session`).
    """
    pseudo = Pseudonyms.from_mapping(mapping, key=key)
    with _lock:
        old = _state["pseudonyms"]
        if old is not None:
            for k, v in old.known.items():
                pseudo._remember(k, v, old.kinds.get(k, "id"))
        _state["pseudonyms"] = pseudo
        if show_phi is not None:
            _state["show_phi"] = bool(show_phi)
    return pseudo


def reset() -> None:
    """Forget what this session learned: identifiers, watched indexes, file sources, key.

    The next display starts a fresh session (:func:`session`), as in a new
    kernel; e.g. after switching from one cohort to another in a notebook.
    """
    with _lock:
        _state.clear()
        _state.update({"pseudonyms": None, "show_phi": None, "sources": [], "read": set()})


def add_source(files: Callable[[], Iterable[str]]) -> None:
    """Learn identifiers from the DICOM files a callable lists (called before each display)."""
    with _lock:
        _state["sources"].append(files)


def show_phi() -> bool:
    """True when this session shows real identifiers (see :func:`configure`)."""
    session()
    return bool(_state["show_phi"])


def display_name(patient: Any, *, show_phi: bool | None = None) -> str:
    """How to show a patient in a title, caption, print or table: its pseudonym.

    The one display rule of medlab: the patient's pseudonym (the session's key
    or mapping; in a report run, the report's), or the identifier itself when
    identifiers were asked for (``show_phi=True`` here, in
    :func:`configure`, or in the report run). The identifier is remembered,
    so it is also replaced wherever it appears in a medlab title or a report.

    Parameters
    ----------
    patient : str or int
        A Patient ID (or name).
    show_phi : bool, optional
        Override the session's choice.

    Examples
    --------
    >>> display_name("STS_019").startswith("ANON-")
    True
    >>> display_name("STS_019", show_phi=True)
    'STS_019'
    """
    if _missing(patient):
        return "(no patient)"
    pseudo = session()
    if show_phi if show_phi is not None else bool(_state["show_phi"]):
        return str(patient).strip()
    return pseudo.add(patient, "id") or pseudo.pseudonym(patient)


def display_names(patients: Any, *, show_phi: bool | None = None) -> Any:
    """:func:`display_name` of each value of a pandas Series (missing: ``(no patient)``)."""
    cache: dict[Any, str] = {}

    def one(v: Any) -> str:
        k = "" if _missing(v) else v
        if k not in cache:
            cache[k] = display_name(v, show_phi=show_phi)
        return cache[k]

    return patients.map(one)


def display_text(text: Any, *, refresh: bool = True) -> Any:
    """A title or caption with every identifier known to the session replaced.

    Every medlab viewer, gallery and static plot passes its title through
    this; text that is not a string is returned as it is. ``refresh``: see
    :func:`session`.
    """
    if not isinstance(text, str) or not text:
        return text
    pseudo = session(refresh=refresh)
    if _state["show_phi"]:
        return text
    return pseudo.text(text)


# ---------------------------------------------------------------------- the final check
@dataclass(frozen=True)
class Finding:
    """One identifier found in an output."""

    file: str
    where: str
    kind: str
    replacement: str
    excerpt: str

    def __str__(self) -> str:
        return (f"{self.file} ({self.where}): {self.kind.replace('_', ' ')} of "
                f"{self.replacement} in {self.excerpt!r}")


def _masked_excerpt(text: str, start: int, identifier: str, pseudo: Pseudonyms) -> str:
    """The text around a finding, every identifier in it masked (``T*********``)."""
    end = start + len(identifier)
    piece = text[max(0, start - 30):end + 30]
    return _mask(" ".join(piece.split()), pseudo)


def _mask(text: str, pseudo: Pseudonyms) -> str:
    def hide(s: str) -> str:
        return s[:1] + "*" * max(1, len(s) - 1)

    pattern = pseudo._pattern()
    if pattern is not None:
        text = pattern.sub(lambda m: hide(m.group(1)), text)
    return _TRUNCATED.sub(lambda m: hide(m.group(0)), text)


def _file_texts(path: Path) -> list[tuple[str, str]]:
    """(place, text) pieces of one output file, as a reader of it would see them."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        from pypdf import PdfReader

        reader = PdfReader(path)
        return [(f"page {i + 1}", page.extract_text() or "") for i, page in
                enumerate(reader.pages)] + [("metadata", json.dumps(
                    {str(k): str(v) for k, v in (reader.metadata or {}).items()}))]
    if suffix == ".parquet":
        import pandas as pd

        frame = pd.read_parquet(path)
        pieces = [("column names", "\n".join(map(str, frame.columns)))]
        for c in frame.columns:
            pieces.append((f"column {c!r}", "\n".join(map(str, frame[c].tolist()))))
        return pieces
    data = path.read_bytes()
    text = data.decode("utf-8", "replace")
    return [(f"line {n + 1}", line) for n, line in enumerate(text.splitlines())] or [("", text)]


def scan_files(paths: Iterable[str | os.PathLike], identifiers: Pseudonyms, *,
               root: str | os.PathLike | None = None) -> list[Finding]:
    """Search files for every identifier ``identifiers`` knows.

    Text files (HTML, JSON, notebooks, CSV, Markdown) are searched as text,
    PDFs as their extracted text and metadata, Parquet tables cell by cell;
    file and folder names (relative to ``root``) too.

    Returns
    -------
    list of Finding
        Empty when no identifier was found.
    """
    found: list[Finding] = []
    base = Path(root) if root is not None else None
    for p in paths:
        path = Path(p)
        shown = path.relative_to(base).as_posix() if base and path.is_relative_to(base) \
            else path.name
        for start, ident in identifiers.find(shown):
            found.append(Finding(_mask(shown, identifiers), "file name",
                                 identifiers.kinds.get(ident, "id"),
                                 identifiers.known.get(ident, "?"),
                                 _masked_excerpt(shown, start, ident, identifiers)))
        if not path.is_file():
            continue
        for place, text in _file_texts(path):
            for start, ident in identifiers.find(text):
                found.append(Finding(_mask(shown, identifiers), _mask(place, identifiers),
                                     identifiers.kinds.get(ident, "id"),
                                     identifiers.known.get(ident, "?"),
                                     _masked_excerpt(text, start, ident, identifiers)))
    return found
