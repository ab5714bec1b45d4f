"""Keep patient identifiers out of reports: the report side of :mod:`medlab.privacy`.

A report learns identifiers from the run parameters whose names say so
(``patient_id``, ``patients``, ``subject``, ``birth_date``, ...; also the
defaults in the notebook's ``parameters`` cell), from the result tables'
identifier columns, from the headers of the DICOM files the notebook read
(Patient ID, names, other IDs, birth date, accession number) and the folder
names that contain them, and, in a batch, from the cohort index. They are
replaced by pseudonyms at the source in the report's kernel (tables shown,
figure text drawn, medlab titles) and again in every output; a final scan
(:func:`medlab.privacy.scan_files`) fails the run if one is left.
"""

from __future__ import annotations

from ..privacy import BIRTH_DATE_REPLACEMENT, Pseudonyms, identifier_kind

__all__ = ["BIRTH_DATE_REPLACEMENT", "Pseudonyms", "identifier_kind"]
