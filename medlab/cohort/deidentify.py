"""De-identified export of DICOM files (DICOM PS3.15 Annex E, Basic Profile).

:func:`export` writes a de-identified copy of a selection of DICOM files to
``dest/<patient>/<study>/<series>/<instance>.dcm`` (all four names are
pseudonyms) and, separately, a mapping table from originals to pseudonyms.
The source files are only ever opened for reading.

What happens to each attribute
------------------------------
- Attributes listed in PS3.15 Table E.1-1 (shipped as ``_annex_e.csv`` beside
  this module; see :func:`annex_e_table`) get the Basic Profile action, or the
  action of a chosen option (K beats C beats the basic action).
- Compound actions: the IOD module tables are not consulted, so the attribute
  is kept present without its value: ``Z`` (empty) where the table allows it,
  else ``D`` (a dummy); dates and times whose action allows ``D`` get a dummy
  value (``19000101`` / ``000000``) so that Type 1 dates stay valid.
  ``X/Z/U*`` sequences (Referenced/Source Image Sequence) are kept, with every
  UID inside replaced.
- UIDs: every UI value, in any attribute and at any depth, is replaced by
  ``2.25.<integer>`` built from a keyed hash (HMAC-SHA256) of the original, so
  the same original UID gets the same pseudonym in every file and every run
  with the same key: series still group and SEG / RTSTRUCT / SR references
  still resolve. Kept as they are: class UIDs (``*ClassUID``), transfer
  syntaxes, coding-scheme, context-group and mapping-resource UIDs, and any UID
  in the standard's registry (pydicom's UID dictionary).
- Patient ID and Patient's Name become one pseudonym (``ANON-...``), keyed on
  the original Patient ID (on the name when the ID is empty; files with
  neither share one pseudonym).
- Dates: removed or dummied per the table in the basic profile. With
  ``retain_longitudinal_modified_dates`` every date (DA, and the date part of
  DT) is shifted by a per-patient number of days (between 365 and 3650 days
  back, from a keyed hash of the Patient ID); times are kept. Dates the table
  does not list (Instance Creation Date, SR ``Date``/``DateTime`` items, ...)
  are treated like a listed ``X/D`` date. Version stamps of coding resources
  (Context Group Version, Template Version) are not patient dates and are kept.
- ``C`` (clean) in an option column: dates are shifted, times and the timezone
  offset kept; any other value is removed (free text cannot be cleaned
  reliably; removal is stricter than cleaning).
- ``D`` on a sequence (SR Content Sequence, Verifying Observer Sequence, ...):
  the items are kept, so SR trees and their references stay valid, and cleaned
  recursively: every free-text value (AE, LO, LT, PN, SH, ST, UC, UR, UT) is
  replaced by a dummy, except the coded vocabulary (Code Value, Coding Scheme
  Designator, Code Meaning, ...) -- and inside identification code sequences
  (e.g. Person Identification Code Sequence) even that. This is not the Clean
  Structured Content option (113104), which is not claimed.
- Person names the table does not list are emptied. Standard attributes
  unknown to pydicom's data dictionary are removed (they cannot be judged).
  A few identifying attributes missing from the table edition used are removed
  too (:data:`ADDITIONS`).
- Private attributes are removed, except those named in ``safe_private``.
- Overlays: the whole overlay group (60xx) is removed -- the table removes
  Overlay Data and Overlay Comments, and a plane without its data is invalid.
- File meta is rebuilt (new Media Storage SOP Instance UID, medlab as the
  implementation); the 128-byte preamble is zeroed (it can carry data).
- Pixel data are copied byte for byte (never decoded or re-encoded), and every
  attribute the profile keeps is written back unchanged.
- Patient Identity Removed = YES; De-identification Method and De-identification
  Method Code Sequence (CID 7050: 113100, plus 113107 / 113108 / 113111 for the
  options used) are added to what the source already recorded; Longitudinal
  Temporal Information Modified = MODIFIED or REMOVED.

Burned-in annotation is flagged and not exported unless asked for
(``allow_burned_in=True``): Burned In Annotation = YES, Recognizable Visual
Features = YES, encapsulated documents, and modalities that usually carry
burned-in text (US, SC, OT, XA, RF, ES, XC, GM, DOC, IVUS; secondary captures)
when Burned In Annotation is absent. medlab does not clean pixel data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import pydicom
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    UID_dictionary,
)
from tqdm.auto import tqdm

from .._version import __version__
from ..errors import MedlabError, MissingDependencyError
from ..io.dicom import quiet_pydicom
from ..io.dicom._files import iter_files, looks_like_dicom, read_dataset

__all__ = ["ADDITIONS", "OPTIONS", "ExportReport", "annex_e_table", "export"]

#: option name -> (column of Table E.1-1, CID 7050 code value, code meaning)
OPTIONS: dict[str, tuple[str, str, str]] = {
    "retain_longitudinal_modified_dates": (
        "retain_long_modified_dates", "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option"),
    "retain_patient_characteristics": (
        "retain_patient_chars", "113108", "Retain Patient Characteristics Option"),
}
_BASIC_CODE = ("113100", "Basic Application Confidentiality Profile")
_SAFE_PRIVATE_CODE = ("113111", "Retain Safe Private Option")
#: CID 7050 clean options (113101 pixel data, 113102 visual features, 113103 graphics,
#: 113104 structured content, 113105 descriptors)
_CLEAN_CODES = frozenset({"113101", "113102", "113103", "113104", "113105"})

#: identifying attributes missing from the Table E.1-1 edition shipped, removed (X)
ADDITIONS: dict[int, str] = {
    0x00100024: "X",  # Issuer of Patient ID Qualifiers Sequence (universal entity IDs)
    0x00100033: "X",  # Patient's Birth Date in Alternative Calendar
    0x00100034: "X",  # Patient's Death Date in Alternative Calendar
    0x00100035: "X",  # Patient's Alternative Calendar
    0x00203404: "X",  # Modifying Device Manufacturer (in the 2013 edition of the table)
}

#: free-text value representations (replaced by a dummy inside D-cleaned sequences)
_TEXT_VRS = frozenset({"AE", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
#: coded vocabulary kept inside D-cleaned sequences (except identification codes)
_CODED = frozenset({
    "CodeValue", "CodingSchemeDesignator", "CodingSchemeVersion", "CodeMeaning",
    "LongCodeValue", "URNCodeValue", "ContextIdentifier", "MappingResourceName",
    "ContextGroupExtensionFlag", "MappingResource",
})
#: dates that version coding resources, not patients
_VERSION_DATES = frozenset({
    "ContextGroupVersion", "ContextGroupLocalVersion", "TemplateVersion", "TemplateLocalVersion",
})
#: UI attributes whose values are registry UIDs (coding schemes, context groups, ...)
_REGISTRY_UID_KEYWORDS = frozenset({"CodingSchemeUID", "ContextUID", "MappingResourceUID"})
_BURNED_IN_MODALITIES = frozenset({"US", "IVUS", "SC", "OT", "XA", "RF", "ES", "XC", "GM", "DOC"})
_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
_SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
_MIN_KEY_BYTES = 16

_PATIENT_ID = Tag("PatientID")
_PATIENT_NAME = Tag("PatientName")
_DUMMY_BY_VR = {"DA": "19000101", "DT": "19000101000000", "TM": "000000", "AS": "000Y",
                "DS": "0", "IS": "0"}
_NUMERIC_VRS = frozenset({"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD"})
_BYTES_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})

# cleaning modes
_NORMAL, _DUMMY, _DUMMY_CODES = 0, 1, 2


@lru_cache(maxsize=1)
def _table_rows() -> tuple[dict[str, str], ...]:
    text = resources.files(__package__).joinpath("_annex_e.csv").read_text(encoding="utf-8")
    lines = "\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))
    frame = pd.read_csv(io.StringIO(lines), dtype=str, keep_default_na=False)
    return tuple(frame.to_dict("records"))


def annex_e_table() -> pd.DataFrame:
    """DICOM PS3.15 Table E.1-1 as shipped with medlab, one row per attribute.

    Returns
    -------
    pandas.DataFrame
        Columns ``tag`` (8 hex digits, ``x`` for repeating groups, or
        ``private``), ``keyword``, ``name``, ``in_std_comp_iod``, ``basic`` (the
        Basic Profile action) and one column per option (``retain_*``,
        ``clean_*``; empty when the option keeps the basic action). Where the
        table comes from is written at the top of ``_annex_e.csv``.

    Examples
    --------
    >>> t = annex_e_table()
    >>> t.set_index("keyword").loc["PatientName", "basic"]
    'Z'
    """
    return pd.DataFrame(list(_table_rows()))


class _Rules:
    """Per-tag action codes for a profile with options."""

    def __init__(self, options: tuple[str, ...]) -> None:
        self.shift_dates = "retain_longitudinal_modified_dates" in options
        columns = [OPTIONS[o][0] for o in options]
        self.codes: dict[int, str] = dict(ADDITIONS)
        for row in _table_rows():
            code = row["basic"]
            chosen = {row[c] for c in columns} - {""}
            if "K" in chosen:
                code = "K"
            elif "C" in chosen:
                code = "C"
            tag = row["tag"]
            if re.fullmatch(r"[0-9A-F]{8}", tag):
                self.codes[int(tag, 16)] = code
            # repeating groups (curves, overlays) and private attributes are handled
            # as whole groups in _Exporter._clean

    def code(self, tag: int, keyword: str, vr: str) -> str | None:
        """The action code for a standard attribute; None: remove it (unknown)."""
        code = self.codes.get(tag)
        if code is not None:
            return code
        if not keyword:
            return None
        if vr == "UI":
            return "U"
        if vr in ("DA", "DT"):
            if keyword in _VERSION_DATES:
                return "K"
            return "C" if self.shift_dates else "X/D"
        if vr == "PN":
            return "Z"
        return "K"


def _resolve(code: str, vr: str) -> str:
    """One action from a (possibly compound) Table E.1-1 code."""
    if code == "X/Z/U*":
        return "K"  # keep the sequence: the recursion replaces every UID in it
    choices = code.split("/")
    if len(choices) == 1:
        return code
    if "D" in choices and vr in ("DA", "DT", "TM"):
        return "D"
    return "Z" if "Z" in choices else "D"


def _values(value: Any) -> list[Any]:
    if isinstance(value, (MultiValue, list, tuple)):
        return list(value)
    return [value]


def _empty(vr: str) -> Any:
    if vr == "SQ":
        return Sequence()
    if vr in _NUMERIC_VRS or vr in _BYTES_VRS or vr == "AT":
        return None
    return ""


def _dummy(vr: str) -> Any:
    if vr in _DUMMY_BY_VR:
        return _DUMMY_BY_VR[vr]
    if vr in _NUMERIC_VRS:
        return 0
    if vr in _BYTES_VRS:
        return b"\x00\x00"
    if vr == "AT":
        return None
    return "ANONYMIZED"


def _shift_value(value: str, vr: str, days: int) -> str:
    """``value`` (DA or DT) moved by ``days``; '' when it has no full date."""
    s = value.strip()
    m = re.fullmatch(r"(\d{4})\.?(\d{2})\.?(\d{2})(.*)", s)
    if not m or (vr == "DA" and m.group(4)):
        return ""
    try:
        d = date(int(m.group(1)), int(m.group(2)), int(m.group(3))) + timedelta(days=days)
    except (ValueError, OverflowError):
        return ""
    return d.strftime("%Y%m%d") + (m.group(4) if vr == "DT" else "")


@dataclass
class _Patient:
    original: str
    pseudonym: str
    offset_days: int


class _Exporter:
    """De-identifies datasets with one key, profile and option set."""

    def __init__(self, key: bytes, options: tuple[str, ...],
                 safe_private: frozenset[tuple[int, str, int]]) -> None:
        self.key = key
        self.options = options
        self.rules = _Rules(options)
        self.safe_private = safe_private
        self.uids: dict[str, tuple[str, str]] = {}  # original -> (pseudonym, first attribute)
        self.patients: dict[str, _Patient] = {}

    # -- pseudonyms ------------------------------------------------------------------
    def _digest(self, domain: str, value: str) -> bytes:
        msg = domain.encode() + b"\x00" + value.encode("utf-8", "surrogateescape")
        return hmac.new(self.key, msg, hashlib.sha256).digest()

    def uid(self, value: str, attribute: str) -> str:
        uid = str(value).strip().rstrip("\x00").strip()
        if not uid or uid in UID_dictionary:
            return uid
        if uid not in self.uids:
            n = int.from_bytes(self._digest("uid", uid)[:16], "big")
            # a version-8 (custom) RFC 4122 UUID, as PS3.5 B.2 asks of 2.25 UIDs
            n = (n & ~(0xC000 << 48)) | (0x8000 << 48)
            n = (n & ~(0xF000 << 64)) | (0x8 << 76)
            self.uids[uid] = (f"2.25.{n}", attribute or "private")
        return self.uids[uid][0]

    def patient(self, ds: Dataset) -> _Patient:
        original = str(ds.get("PatientID", "") or "").strip()
        if not original:
            original = str(ds.get("PatientName", "") or "").strip()
        if original not in self.patients:
            code = base64.b32encode(self._digest("patient", original)).decode()[:12]
            days = 365 + int.from_bytes(self._digest("date", original)[:4], "big") % 3286
            self.patients[original] = _Patient(original, f"ANON-{code}", -days)
        return self.patients[original]

    # -- cleaning --------------------------------------------------------------------
    def deidentify(self, ds: Dataset) -> tuple[Dataset, str]:
        """Clean ``ds`` in place; returns it and its relative output path."""
        pat = self.patient(ds)
        methods = [str(v) for v in _values(ds.get("DeidentificationMethod", "")) if str(v)]
        self._clean(ds, pat, _NORMAL)
        ds.PatientID = ds.PatientName = pat.pseudonym  # Type 2: present even if absent before
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = [*methods, f"medlab {__version__}: DICOM PS3.15 E.1-1"]
        codes = [_BASIC_CODE] + [OPTIONS[o][1:] for o in self.options]
        if self.safe_private:
            codes.append(_SAFE_PRIVATE_CODE)
        earlier = list(ds.get("DeidentificationMethodCodeSequence", []))
        items = []
        for value, meaning in codes:
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
            items.append(item)
        ours = {value for value, _ in codes}
        # earlier cleaning stays true (clean pixel data, descriptors, ...); earlier "retain"
        # options do not survive this export unless chosen again
        items += [it for it in earlier if str(it.get("CodeValue", "")) in _CLEAN_CODES - ours]
        ds.DeidentificationMethodCodeSequence = Sequence(items)
        ds.LongitudinalTemporalInformationModified = (
            "MODIFIED" if self.rules.shift_dates else "REMOVED")
        rel = "/".join([pat.pseudonym, str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID),
                        f"{ds.SOPInstanceUID}.dcm"])
        return ds, rel

    def _kept_private(self, ds: Dataset) -> set[int]:
        if not self.safe_private:
            return set()
        keep: set[int] = set()
        for t in ds.keys():
            if not t.is_private or t.element < 0x1000:
                continue
            creator = ds.get(Tag(t.group, t.element >> 8))
            name = str(creator.value).strip() if creator is not None else ""
            if (t.group, name, t.element & 0xFF) in self.safe_private:
                keep.update((int(t), int(Tag(t.group, t.element >> 8))))
        return keep

    def _clean(self, ds: Dataset, pat: _Patient, mode: int) -> None:
        keep_private = self._kept_private(ds)
        for t in list(ds.keys()):
            t = BaseTag(t)
            if t.is_private:
                if int(t) not in keep_private:
                    del ds[t]
                elif t.element >= 0x1000:
                    elem = ds[t]
                    if elem.VR == "UI":
                        self._replace_uids(elem)
                    elif elem.VR == "SQ":
                        for item in elem.value:
                            self._clean(item, pat, mode)
                continue
            group = t.group
            if (group in (0x0000, 0x0002, 0xFFFE) or t.element == 0x0000
                    or (group & 0xFF00) in (0x5000, 0x6000)):
                # command / meta / stray item tags / group length / curves / overlay planes
                del ds[t]
                continue
            if t in (_PATIENT_ID, _PATIENT_NAME):
                ds[t].value = pat.pseudonym
                continue
            raw = ds.get_item(t)
            keyword = keyword_for_tag(t)
            vr = raw.VR if raw is not None else None
            if (not vr or vr == "UN") and keyword:
                vr = dictionary_VR(t)
            if not vr or vr == "NONE":
                vr = "UN"
            code = self.rules.code(int(t), keyword, vr)
            if code is None:
                del ds[t]  # not in the data dictionary: cannot be judged
                continue
            action = _resolve(code, vr)
            if (action == "K" and mode != _NORMAL and vr in _TEXT_VRS
                    and (mode == _DUMMY_CODES or keyword not in _CODED)):
                action = "D"
            if action == "K" and vr != "SQ":
                continue  # leave the value exactly as read
            self._apply(ds, t, keyword, action, pat, mode)

    def _apply(self, ds: Dataset, t: BaseTag, keyword: str, action: str, pat: _Patient,
               mode: int) -> None:
        if action == "X":
            del ds[t]
            return
        elem = ds[t]
        vr = elem.VR
        if action == "K":  # a kept sequence: clean inside
            for item in elem.value:
                self._clean(item, pat, mode)
        elif action == "Z":
            elem.value = _empty(vr)
        elif action == "D":
            if vr == "SQ":
                sub = _DUMMY_CODES if keyword.endswith("IdentificationCodeSequence") else _DUMMY
                for item in elem.value:
                    self._clean(item, pat, sub)
            elif vr == "UI":
                self._replace_uids(elem)
            else:
                elem.value = _dummy(vr)
        elif action == "U":
            if vr == "UI":
                self._replace_uids(elem)
            elif vr == "SQ":
                for item in elem.value:
                    self._clean(item, pat, mode)
            else:
                elem.value = _dummy(vr)
        elif action == "C":
            if vr in ("DA", "DT"):
                shifted = [_shift_value(str(v), vr, pat.offset_days) for v in _values(elem.value)]
                elem.value = shifted if len(shifted) > 1 else shifted[0]
            elif vr == "SQ":
                for item in elem.value:
                    self._clean(item, pat, mode)
            elif vr != "TM" and keyword != "TimezoneOffsetFromUTC":
                del ds[t]  # free text cannot be cleaned reliably: removal is stricter
        else:  # pragma: no cover - the table holds no other codes (checked by the tests)
            raise AssertionError(f"unknown action {action!r} for {keyword or t}")

    def _replace_uids(self, elem: Any) -> None:
        keyword = elem.keyword
        if keyword.endswith(("ClassUID", "TransferSyntaxUID")) or keyword in _REGISTRY_UID_KEYWORDS:
            return
        if elem.value is None or elem.value == "":
            return
        new = [self.uid(str(v), keyword) for v in _values(elem.value)]
        elem.value = new if len(new) > 1 else new[0]

    # -- mapping ---------------------------------------------------------------------
    def mapping(self, files: list[tuple[str, str]]) -> pd.DataFrame:
        rows = [("patient", "PatientID", p.original, p.pseudonym) for p in self.patients.values()]
        if self.rules.shift_dates:
            rows += [("date_offset", "days", p.original, str(p.offset_days))
                     for p in self.patients.values()]
        rows += [("uid", attr, orig, new) for orig, (new, attr) in self.uids.items()]
        rows += [("file", "path", src, out) for src, out in files]
        return pd.DataFrame(rows, columns=["kind", "attribute", "original", "replacement"])


@dataclass(repr=False)
class ExportReport:
    """What :func:`export` did.

    Attributes
    ----------
    n_files : int
        Files considered (every entry of the selection, after removing duplicates).
    n_written : int
        De-identified files written under ``dest``.
    flagged : pandas.DataFrame
        Files that may carry burned-in identifying text: ``path``, ``reason``,
        ``exported`` (False unless ``allow_burned_in=True``).
    skipped : pandas.DataFrame
        Files not exported, with the reason: ``path``, ``reason``.
    mapping_path : Path or None
        Where the mapping table was written (None when ``mapping=None``).
    dest : Path
        The export folder.
    mapping : pandas.DataFrame
        The mapping of this export: ``kind`` (``patient``, ``date_offset``,
        ``uid``, ``file``), ``attribute``, ``original``, ``replacement``.
        Keep it as secret as the originals: it re-identifies the export.
    written : pandas.DataFrame
        ``path`` (source) and ``output`` (relative to ``dest``) per written file.
    profile, options : str, tuple of str
        The profile and options applied.
    key : str or None
        The key, only when :func:`export` generated it (``key=None``); store it
        safely to reproduce or extend the export.
    """

    n_files: int
    n_written: int
    flagged: pd.DataFrame
    skipped: pd.DataFrame
    mapping_path: Path | None
    dest: Path
    mapping: pd.DataFrame = field(default_factory=pd.DataFrame)
    written: pd.DataFrame = field(default_factory=pd.DataFrame)
    profile: str = "basic"
    options: tuple[str, ...] = ()
    key: str | None = None

    def __repr__(self) -> str:
        key = ", key=<generated: see .key>" if self.key else ""
        return (f"ExportReport(n_files={self.n_files}, n_written={self.n_written}, "
                f"flagged={len(self.flagged)}, skipped={len(self.skipped)}, "
                f"dest={str(self.dest)!r}, mapping_path="
                f"{str(self.mapping_path) if self.mapping_path else None!r}, "
                f"profile={self.profile!r}, options={self.options!r}{key})")


# -- argument checks -------------------------------------------------------------------
def _check_options(profile: str, options: Any) -> tuple[str, ...]:
    if profile != "basic":
        raise ValueError(
            f"profile={profile!r} is not supported; medlab implements the DICOM PS3.15 Basic "
            "Application Level Confidentiality Profile: use profile='basic' and add options "
            f"with options=(...) (available: {', '.join(OPTIONS)})")
    if isinstance(options, str):
        options = (options,)
    chosen = []
    for opt in options:
        if opt == "basic":
            continue
        if opt not in OPTIONS:
            raise ValueError(
                f"unknown option {opt!r}; available options: {', '.join(OPTIONS)} "
                "(or 'basic' alone)")
        if opt not in chosen:
            chosen.append(opt)
    return tuple(o for o in OPTIONS if o in chosen)  # canonical order


def _check_key(key: str | bytes | None) -> tuple[bytes, str | None]:
    if key is None:
        generated = secrets.token_hex(32)
        return generated.encode(), generated
    if isinstance(key, str):
        raw = key.encode("utf-8")
    elif isinstance(key, (bytes, bytearray)):
        raw = bytes(key)
    else:
        raise TypeError(f"key must be a str or bytes (a secret), got {type(key).__name__}")
    if len(raw) < _MIN_KEY_BYTES:
        raise ValueError(
            f"key is {len(raw)} bytes long; use at least {_MIN_KEY_BYTES} (a short key lets "
            "anyone who guesses it recompute the pseudonyms from patient IDs). Make one with "
            "secrets.token_hex(32) and store it safely, or pass key=None to have one generated "
            "and returned in the report")
    return raw, None


def _check_safe_private(safe_private: Any) -> frozenset[tuple[int, str, int]]:
    if safe_private is None:
        return frozenset()
    out = set()
    for entry in safe_private:
        try:
            group, creator, elem = entry
            group, elem = int(group), int(elem)
        except (TypeError, ValueError):
            raise ValueError(
                f"safe_private entries must be (group, private creator, element) tuples such as "
                f"(0x0019, 'GEMS_ACQU_01', 0x10); got {entry!r}") from None
        if group % 2 == 0 or not 0 <= elem <= 0xFF or not isinstance(creator, str):
            raise ValueError(
                f"safe_private entry {entry!r}: the group must be odd (private), the creator a "
                "string and the element the low byte (0x00-0xFF) of the private element, e.g. "
                "(0x0019, 'GEMS_ACQU_01', 0x10) for (0019,xx10) of that creator")
        out.add((group, creator.strip(), elem))
    return frozenset(out)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _selection_entries(selection: Any, index: Any) -> tuple[list[tuple[str, Path | None, str | None]], set[Path]]:
    """(shown path, local path or None, skip reason) per entry, and the source folders."""
    entries: list[tuple[str, Path | None, str | None]] = []
    folders: set[Path] = set()
    if isinstance(selection, pd.DataFrame):
        if "path" in selection.columns:
            sources = (selection["source"] if "source" in selection.columns
                       else pd.Series([""] * len(selection), index=selection.index))
            for p, src in zip(selection["path"], sources, strict=True):
                shown = str(p)
                if str(src or "").startswith("remote") or re.match(r"^[a-z][a-z0-9+.-]*://", shown):
                    entries.append((shown, None, f"remote ({src or shown}): retrieve it to a "
                                    "local folder first, then export the local copy"))
                elif pd.isna(p) or not shown:
                    entries.append((shown, None, "empty path in the selection"))
                else:
                    entries.append((shown, Path(shown), None))
        elif "series_uid" in selection.columns:
            if index is None or not hasattr(index, "files"):
                raise TypeError(
                    "the selection has 'series_uid' but no 'path' column: pass the index it came "
                    "from, export(selection, dest, index=idx, ...), or select instances (rows "
                    "with a 'path' column) instead")
            for uid in pd.unique(selection["series_uid"].dropna()):
                for p in index.files(uid):
                    entries.append((str(p), Path(p), None))
        else:
            raise ValueError(
                "a selection DataFrame needs a 'path' column (index instances) or a 'series_uid' "
                f"column with index=...; got columns {list(selection.columns)}")
        return entries, folders
    items = [selection] if isinstance(selection, (str, os.PathLike)) else list(selection)
    for item in items:
        p = Path(item)
        if p.is_dir():
            folders.add(p.resolve())
            entries += [(str(f), f, None) for f in iter_files(p)]
        elif p.is_file():
            entries.append((str(p), p, None))
        else:
            raise FileNotFoundError(f"no such file or folder to export: {str(p)!r}")
    return entries, folders


def _transfer_syntax(ds: Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts:
        return str(ts)
    implicit, little = ds.original_encoding
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def _burned_in_reason(ds: Dataset) -> str | None:
    burned = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    fix = "clean the pixel data first, or pass allow_burned_in=True after checking the images"
    if burned == "YES":
        return f"BurnedInAnnotation is YES: the pixels carry identifying text; {fix}"
    if str(ds.get("RecognizableVisualFeatures", "") or "").strip().upper() == "YES":
        return f"RecognizableVisualFeatures is YES (e.g. a face); {fix}"
    if "EncapsulatedDocument" in ds:
        return ("encapsulated document (PDF, CDA, ...): its content is not de-identified; "
                "pass allow_burned_in=True after checking it")
    if burned == "NO":
        return None
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if modality in _BURNED_IN_MODALITIES:
        return (f"Modality {modality} without BurnedInAnnotation: such images often carry "
                f"burned-in patient text; {fix}")
    if str(ds.get("SOPClassUID", "")).startswith(_SECONDARY_CAPTURE_PREFIX):
        return f"secondary capture without BurnedInAnnotation; {fix}"
    return None


def _write_mapping(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    parquet = path.suffix.lower() == ".parquet"
    if path.exists():
        old = pd.read_parquet(path) if parquet else pd.read_csv(path, dtype=str,
                                                                 keep_default_na=False)
        frame = pd.concat([old.astype(str), frame], ignore_index=True).drop_duplicates()
    tmp = path.with_name(path.name + ".tmp")
    if parquet:
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


def export(
    selection: Any,
    dest: str | os.PathLike,
    *,
    key: str | bytes | None,
    profile: str = "basic",
    options: str | Iterable[str] = (),
    mapping: str | os.PathLike | None = None,
    safe_private: Iterable[tuple[int, str, int]] | None = None,
    allow_burned_in: bool = False,
    index: Any = None,
    progress: bool = True,
) -> ExportReport:
    """Write a de-identified copy of DICOM files (DICOM PS3.15 Annex E).

    Parameters
    ----------
    selection : DataFrame, path or iterable of paths
        What to export: index instances (a DataFrame with a ``path`` column;
        rows whose ``source`` is remote are skipped), series (a DataFrame with
        ``series_uid``, together with ``index``), or files and folders
        (searched recursively; files are recognised by content).
    dest : path
        Output folder: ``dest/<patient>/<study>/<series>/<instance>.dcm``, all
        pseudonyms. Created when missing; must not lie inside a source folder.
    key : str, bytes or None
        Secret (at least 16 bytes) from which every pseudonym and date offset
        is derived: the same key gives byte-identical output, so exports can be
        repeated and extended consistently. Required; ``None`` generates a
        random key, returned as ``report.key``.
    profile : {'basic'}
        The Basic Application Level Confidentiality Profile.
    options : str or iterable of str
        Any of ``'retain_longitudinal_modified_dates'`` (shift dates by a
        per-patient offset instead of removing them) and
        ``'retain_patient_characteristics'`` (keep sex, age, weight, size,
        ethnic group, smoking and pregnancy status).
    mapping : path, optional
        Where to write the mapping table (``.csv`` or ``.parquet``) from
        originals to pseudonyms (patients, UIDs, date offsets, files). Must lie
        outside ``dest``; an existing table is extended. None: not written (it
        is still returned as ``report.mapping``).
    safe_private : iterable of (group, creator, element), optional
        Private attributes to keep, e.g. ``(0x0019, 'GEMS_ACQU_01', 0x10)`` for
        element ``(0019,xx10)`` of that private creator. Their values are kept
        as they are (UIDs replaced): only list attributes known to hold no
        identifying information. Default: every private attribute is removed.
    allow_burned_in : bool
        Also export files flagged as possibly carrying burned-in text (they
        stay listed in ``report.flagged``). medlab does not clean pixel data.
    index : object, optional
        An object with ``files(series_uid)`` (the cohort index), needed when
        ``selection`` lists series.
    progress : bool
        Show a progress bar.

    Returns
    -------
    ExportReport

    Raises
    ------
    ValueError
        An unknown profile or option, a short key, ``mapping`` inside ``dest``
        or not ``.csv``/``.parquet``, or ``dest`` inside a source folder.
    FileNotFoundError
        A path given in ``selection`` does not exist.

    Examples
    --------
    >>> import medlab as ml
    >>> report = ml.cohort.export(ml.data.fetch("sts-cohort") / "dicom" / "STS_002",  # doctest: +SKIP
    ...                           "export/sts", key=my_secret, mapping="private/sts-map.csv",
    ...                           options=["retain_longitudinal_modified_dates"])
    """
    chosen = _check_options(profile, options)
    raw_key, generated = _check_key(key)
    safe = _check_safe_private(safe_private)
    entries, folders = _selection_entries(selection, index)

    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise ValueError(f"dest {str(dest)!r} exists and is not a folder; choose a folder")
    dest_r = dest.resolve()
    source_files = {p.resolve() for _, p, _ in entries if p is not None}
    for folder in folders | {p.parent for p in source_files}:
        if _inside(dest_r, folder):
            raise ValueError(
                f"dest {str(dest)!r} lies inside the source folder {str(folder)!r}; medlab never "
                "writes into source folders: choose a dest outside it")
    for p in source_files:
        if _inside(p, dest_r):
            raise ValueError(
                f"the source file {str(p)!r} lies inside dest {str(dest)!r}; export to another "
                "folder (an export must not overwrite what it reads)")
    mapping_path = None
    if mapping is not None:
        mapping_path = Path(mapping)
        if mapping_path.suffix.lower() not in (".csv", ".parquet"):
            raise ValueError(
                f"mapping must end in .csv or .parquet, got {str(mapping_path)!r}")
        m_r = mapping_path.resolve()
        if _inside(m_r, dest_r):
            raise ValueError(
                f"mapping {str(mapping_path)!r} lies inside dest {str(dest)!r}: the mapping "
                "re-identifies the export and must be kept apart from it. Write it outside "
                "dest, e.g. next to it")
        for folder in folders | {p.parent for p in source_files}:
            if _inside(m_r, folder):
                raise ValueError(
                    f"mapping {str(mapping_path)!r} lies inside the source folder "
                    f"{str(folder)!r}; medlab never writes into source folders")
        if m_r in source_files:
            raise ValueError(f"mapping {str(mapping_path)!r} is one of the source files")
        if mapping_path.suffix.lower() == ".parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError as exc:
                raise MissingDependencyError(
                    "writing the mapping as Parquet needs pyarrow: pip install 'medlab[cohort]', "
                    "or write it as .csv") from exc

    exporter = _Exporter(raw_key, chosen, safe)
    seen_paths: set[Path] = set()
    seen_sops: dict[str, str] = {}
    skipped: list[tuple[str, str]] = []
    flagged: list[list[Any]] = []
    written: list[tuple[str, str]] = []
    n_files = 0
    dest.mkdir(parents=True, exist_ok=True)
    for shown, path, reason in tqdm(entries, desc="de-identifying", unit="file",
                                    disable=not progress):
        if path is not None:
            resolved = path.resolve()
            if resolved in seen_paths:
                continue
            seen_paths.add(resolved)
        n_files += 1
        if reason is not None:
            skipped.append((shown, reason))
            continue
        if not path.is_file():
            skipped.append((shown, "file not found (moved or deleted since it was selected?)"))
            continue
        if not looks_like_dicom(path):
            skipped.append((shown, "not a DICOM file (no 'DICM' marker and no DICOM tag at "
                                   "the start)"))
            continue
        try:
            with quiet_pydicom():
                ds = read_dataset(path)
                meta_class = ds.file_meta.get("MediaStorageSOPClassUID") if ds.file_meta else None
                if str(meta_class or "") == _DICOMDIR_CLASS or "DirectoryRecordSequence" in ds:
                    skipped.append((shown, "DICOMDIR: it indexes files and names patients; "
                                           "build a new one from the export if needed"))
                    continue
                missing = [k for k in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
                           if not str(ds.get(k, "") or "").strip()]
                if missing:
                    skipped.append((shown, f"no {', '.join(missing)}: not a storable DICOM "
                                           "instance, nothing to export"))
                    continue
                sop = str(ds.SOPInstanceUID).strip()
                if sop in seen_sops:
                    skipped.append((shown, f"same SOPInstanceUID as {seen_sops[sop]}; exported "
                                           "once"))
                    continue
                burned = _burned_in_reason(ds)
                if burned is not None:
                    flagged.append([shown, burned, False])
                    if not allow_burned_in:
                        continue
                ts = _transfer_syntax(ds)
                sop_class = str(ds.get("SOPClassUID", "") or meta_class or "")
                ds, rel = exporter.deidentify(ds)
                meta = FileMetaDataset()
                meta.MediaStorageSOPClassUID = sop_class
                meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
                meta.TransferSyntaxUID = ts
                meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
                meta.ImplementationVersionName = f"MEDLAB_{__version__}"[:16]
                ds.file_meta = meta
                ds.preamble = b"\x00" * 128
                out = dest / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                tmp = out.with_name(out.name + ".part")
                try:
                    pydicom.dcmwrite(tmp, ds, enforce_file_format=True)
                    os.replace(tmp, out)
                finally:
                    tmp.unlink(missing_ok=True)
        except MedlabError:
            raise
        except Exception as exc:  # one bad file never stops the export
            skipped.append((shown, f"cannot be de-identified: {type(exc).__name__}: {exc}"))
            continue
        seen_sops[sop] = shown
        written.append((shown, rel))
        if burned is not None:
            flagged[-1][2] = True  # exported with allow_burned_in=True

    table = exporter.mapping(written)
    if mapping_path is not None:
        _write_mapping(table, mapping_path)
    return ExportReport(
        n_files=n_files,
        n_written=len(written),
        flagged=pd.DataFrame(flagged, columns=["path", "reason", "exported"]),
        skipped=pd.DataFrame(skipped, columns=["path", "reason"]),
        mapping_path=mapping_path,
        dest=dest,
        mapping=table,
        written=pd.DataFrame(written, columns=["path", "output"]),
        profile=profile,
        options=chosen,
        key=generated,
    )
