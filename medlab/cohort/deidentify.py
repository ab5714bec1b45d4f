"""De-identified export of DICOM files (DICOM PS3.15 Annex E, Basic Profile).

:func:`export` writes a de-identified copy of a selection of DICOM files to
``dest/<patient>/<study>/<series>/<instance>.dcm`` (all four names are
pseudonyms) and, separately, a mapping table from originals to pseudonyms.
The source files are only ever opened for reading.

What happens to each attribute
------------------------------
- Attributes listed in PS3.15 Table E.1-1 (the 2024b edition, from
  innolitics/dicom-standard's machine-readable copy, shipped as
  ``_annex_e.csv`` beside this module; see :func:`annex_e_table`) get the
  Basic Profile action, or the action of a chosen option (K beats C beats the
  basic action).
- **Deny by default**: an attribute the table does not list is kept only when
  its value cannot carry identifying text. Text, person-name, date and time
  value representations (:data:`DENIED_VRS`: AE, LO, LT, PN, SH, ST, UC, UR,
  UT, DA, DT, TM) get a dummy value (``ANONYMIZED``, ``19000101``,
  ``000000``; person names are emptied), at any depth. CS (code strings:
  16 upper-case letters, digits, spaces, underscores) is coded vocabulary
  (Modality, Image Type, ...) and kept, except the CS attributes that are
  free labels (:data:`CS_LABELS`, e.g. Content Label). Numbers and binary
  values are kept. ``keep=("Manufacturer", ...)`` keeps named attributes as
  they are (your responsibility: only attributes known to hold no identifying
  text in your data).
- Codes (the code-sequence macro: Code Value, Coding Scheme Designator, Code
  Meaning, ...): a code of the standard's dictionary (pydicom's copy of
  PS3.16: DCM, SCT, UCUM, LN, NCIt, ...) keeps its value and scheme and gets
  the dictionary's meaning (a meaning is free text); any other code gets
  dummy values; Coding Scheme Version is removed.
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
  does not list are treated like a listed ``X/D`` date.
- ``C`` (clean) in an option column: dates are shifted, times and the timezone
  offset kept; any other value is removed (free text cannot be cleaned
  reliably; removal is stricter than cleaning).
- ``D`` on a sequence (SR Content Sequence, Verifying Observer Sequence, ...):
  the items are kept, so SR trees and their references stay valid, and cleaned
  recursively: every free-text value (AE, LO, LT, PN, SH, ST, UC, UR, UT) is
  replaced by a dummy; codes are cleaned as above, and inside identification
  code sequences (e.g. Person Identification Code Sequence) even standard
  codes get dummies. This is not the Clean Structured Content option
  (113104), which is not claimed.
- Standard attributes unknown to pydicom's data dictionary are removed (they
  cannot be judged).
  A few identifying attributes missing from the table edition used are removed
  too (:data:`ADDITIONS`).
- Private attributes are removed, except those named in ``safe_private``.
- Overlays: the whole overlay group (60xx) is removed -- the table removes
  Overlay Data and Overlay Comments, and a plane without its data is invalid.
- File meta is rebuilt (new Media Storage SOP Instance UID, medlab as the
  implementation); the 128-byte preamble is zeroed (it can carry data).
- Pixel data are copied byte for byte (never decoded or re-encoded), and every
  attribute the profile keeps is written back unchanged.
- Patient Identity Removed = YES; De-identification Method (medlab's; an
  earlier value is free text and not kept) and De-identification Method Code
  Sequence (CID 7050: 113100, plus 113107 / 113108 / 113111 for the options
  used, plus the clean options an earlier de-identification recorded); Longitudinal
  Temporal Information Modified = MODIFIED or REMOVED.

Burned-in annotation is flagged and not exported unless asked for
(``allow_burned_in=True``): Burned In Annotation = YES, Recognizable Visual
Features = YES, encapsulated documents, and modalities that usually carry
burned-in text (US, SC, OT, XA, RF, ES, XC, GM, DOC, IVUS; secondary captures)
when Burned In Annotation is absent. medlab does not clean pixel data.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from tqdm.auto import tqdm

from .._optional import import_optional
from .._version import __version__
from ..errors import MedlabError
from ..io.dicom import iter_files, looks_like_dicom, quiet_pydicom, read_dataset

__all__ = ["ADDITIONS", "CS_LABELS", "DENIED_VRS", "OPTIONS", "ExportReport", "annex_e_table",
           "export"]

#: option name -> (column of Table E.1-1, CID 7050 code value, code meaning)
from ._deid_rules import (
    _BURNED_IN_MODALITIES,
    _DICOMDIR_CLASS,
    _MIN_KEY_BYTES,
    _SECONDARY_CAPTURE_PREFIX,
    ADDITIONS,
    CS_LABELS,
    DENIED_VRS,
    OPTIONS,
    _Exporter,
    annex_e_table,
)


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


def _check_keep(keep: Any) -> frozenset[str]:
    from pydicom.datadict import tag_for_keyword

    if isinstance(keep, str):
        keep = (keep,)
    out = set()
    for kw in keep or ():
        if not isinstance(kw, str) or tag_for_keyword(kw) is None:
            raise ValueError(
                f"keep entries must be DICOM keywords of pydicom's data dictionary such as "
                f"'Manufacturer' or 'SegmentLabel'; got {kw!r}")
        if kw in ("PatientID", "PatientName"):
            raise ValueError(f"keep={kw!r}: the patient's ID and name are always replaced by "
                             "the pseudonym (that is what the export is for)")
        out.add(kw)
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
    keep: Iterable[str] = (),
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
    keep : iterable of str
        DICOM keywords of attributes to keep as they are wherever they occur,
        overriding the table and the deny-by-default rule (e.g.
        ``("Manufacturer", "SegmentLabel")``). Only name attributes known to
        hold no identifying text in your data; Patient ID and name cannot be
        kept.
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
    kept = _check_keep(keep)
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
            import_optional("pyarrow", feature="writing the mapping as Parquet", extra="cohort",
                            hint=", or write it as .csv")

    exporter = _Exporter(raw_key, chosen, safe, kept)
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
