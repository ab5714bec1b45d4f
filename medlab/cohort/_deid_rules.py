"""The PS3.15 Annex E rules of the de-identified export: the action table, value
replacement, keyed pseudonyms and the per-file exporter."""

from __future__ import annotations

import hashlib
import hmac
import io
import re
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from importlib import resources
from typing import Any

import pandas as pd
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import (
    UID_dictionary,
)

from .._version import __version__
from ..privacy import pseudonym

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
#: CID 7050 clean options an earlier de-identification may have applied (kept as true)
_CLEAN_CODES = {"113101": "Clean Pixel Data Option",
                "113102": "Clean Recognizable Visual Features Option",
                "113103": "Clean Graphics Option", "113104": "Clean Structured Content Option",
                "113105": "Clean Descriptors Option"}

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
#: value representations that can carry identifying text, names, dates or times: an
#: attribute with one of these that Table E.1-1 does not list is not kept (deny by default).
#: CS (code string: upper-case letters, digits, space, underscore, 16 characters) is coded
#: vocabulary (Modality, Image Type, ...) and kept, except the CS attributes that are free
#: labels (:data:`CS_LABELS`). Numbers (DS, IS, US, FD, ...) and AS are not text.
DENIED_VRS = frozenset({*_TEXT_VRS, "DA", "DT", "TM"})
#: CS attributes whose values are chosen by a person (labels), treated like free text
CS_LABELS = frozenset({"ContentLabel", "PhaseDescription", "SpecimenLabelInImage"})
#: the code-sequence macro's attributes: cleaned together (see _Exporter._clean_code)
_CODE_KEYWORDS = frozenset({
    "CodeValue", "CodingSchemeDesignator", "CodingSchemeVersion", "CodeMeaning",
    "LongCodeValue", "URNCodeValue",
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


@lru_cache(maxsize=1)
def _standard_codes() -> dict[tuple[str, str], str]:
    """(coding scheme, code value) -> code meaning of the codes in pydicom's dictionary
    (DCM, SCT, UCUM, LN, NCIt, ... as the DICOM standard's PS3.16 lists them)."""
    from pydicom.sr._concepts_dict import concepts

    out: dict[tuple[str, str], str] = {}
    for scheme, by_keyword in concepts.items():
        for codes in by_keyword.values():
            for value, (meaning, _cids) in codes.items():
                out.setdefault((scheme, value), meaning)
    return out


class _Rules:
    """Per-tag action codes for a profile with options."""

    def __init__(self, options: tuple[str, ...], keep: frozenset[str] = frozenset()) -> None:
        self.keep = keep
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
        """The action code for a standard attribute; None: remove it (unknown).

        Deny by default: an attribute the table does not list is kept only when
        its value cannot carry identifying text (numbers, coded CS values,
        binary data) or when the caller named it in ``keep``.
        """
        if keyword and keyword in self.keep:
            return "K"
        code = self.codes.get(tag)
        if code is not None:
            return code
        if not keyword:
            return None
        if vr == "UI":
            return "U"
        if vr in ("DA", "DT", "TM"):
            return "C" if self.shift_dates else "X/D"
        if vr == "PN":
            return "Z"
        if vr in DENIED_VRS or keyword in CS_LABELS:
            return "X/D"  # a dummy value: Type 1 attributes stay valid
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
                 safe_private: frozenset[tuple[int, str, int]],
                 keep: frozenset[str] = frozenset()) -> None:
        self.key = key
        self.options = options
        self.rules = _Rules(options, keep)
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
            days = 365 + int.from_bytes(self._digest("date", original)[:4], "big") % 3286
            self.patients[original] = _Patient(original, pseudonym(original, key=self.key), -days)
        return self.patients[original]

    # -- cleaning --------------------------------------------------------------------
    def deidentify(self, ds: Dataset) -> tuple[Dataset, str]:
        """Clean ``ds`` in place; returns it and its relative output path."""
        pat = self.patient(ds)
        self._clean(ds, pat, _NORMAL)
        ds.PatientID = ds.PatientName = pat.pseudonym  # Type 2: present even if absent before
        ds.PatientIdentityRemoved = "YES"
        # an earlier De-identification Method is free text (it can name anyone): not kept
        ds.DeidentificationMethod = f"medlab {__version__}: DICOM PS3.15 E.1-1 (2024b)"
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
        # options do not survive this export unless chosen again; rebuilt from the code only
        for value in dict.fromkeys(str(it.get("CodeValue", "")) for it in earlier):
            if value in _CLEAN_CODES and value not in ours:
                item = Dataset()
                item.CodeValue, item.CodingSchemeDesignator = value, "DCM"
                item.CodeMeaning = _CLEAN_CODES[value]
                items.append(item)
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

    def _clean_code(self, ds: Dataset, mode: int) -> None:
        """The code-sequence macro of one item: a code of the standard's dictionary keeps
        its value and scheme and gets the dictionary's meaning; any other code (local,
        private, or an identification code) gets dummy values."""
        scheme = str(ds.get("CodingSchemeDesignator", "") or "").strip()
        value = str(ds.get("CodeValue", "") or "").strip()
        meaning = _standard_codes().get((scheme, value)) if mode != _DUMMY_CODES else None
        for keyword in _CODE_KEYWORDS:
            if keyword not in ds or keyword in self.rules.keep:
                continue
            if meaning is not None and keyword in ("CodeValue", "CodingSchemeDesignator"):
                continue
            if meaning is not None and keyword == "CodeMeaning":
                ds.CodeMeaning = meaning
            elif keyword == "CodingSchemeVersion":
                del ds[keyword]
            else:
                ds[keyword].value = "ANONYMIZED" if keyword != "URNCodeValue" else "urn:x"

    def _clean(self, ds: Dataset, pat: _Patient, mode: int) -> None:
        keep_private = self._kept_private(ds)
        if any(k in ds for k in _CODE_KEYWORDS):
            self._clean_code(ds, mode)
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
            if keyword in _CODE_KEYWORDS:
                continue  # cleaned with its item (_clean_code)
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
            if action == "K" and mode != _NORMAL and vr in _TEXT_VRS \
                    and keyword not in self.rules.keep:
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
