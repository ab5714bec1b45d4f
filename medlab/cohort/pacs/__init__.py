"""Query, retrieve and send DICOM to a PACS: DICOMweb and DIMSE.

:class:`DicomWeb` speaks DICOMweb through ``dicomweb-client`` (QIDO-RS
search, WADO-RS retrieve, STOW-RS store); :class:`Dimse` speaks the DICOM
network protocol through ``pynetdicom`` (C-ECHO, C-FIND, C-GET, C-STORE).
Both return query results as DataFrames with the columns of the cohort index
(:data:`medlab.cohort.INSTANCE_COLUMNS`): what the server answered is
filled in, everything else is null; ``source`` is ``'remote:<server>'`` and
``path`` the retrieve URL (DICOMweb) or a ``dimse://AET@host:port/...``
locator. Retrieval writes DICOM Part-10 files into a local folder that can
then be indexed with :func:`medlab.cohort.scan`.

Every network operation has a timeout and raises :class:`PacsError` with
the server, what was attempted and what to check -- refused credentials,
a server that is down, an AE title the server does not know -- instead of
hanging or returning silently. ``dicomweb-client``'s retries (which keep
trying a dead server for ~30 s) are turned off.

Examples
--------
>>> import medlab as ml
>>> web = ml.cohort.DicomWeb("http://127.0.0.1:8042/dicom-web",
...                          username="medlab", password="...")  # doctest: +SKIP
>>> series = web.query("series", modality="CT", study_date=("2006-01-01", None))  # doctest: +SKIP
>>> files = web.retrieve(study_uid=series.study_uid[0], series_uid=series.series_uid[0],
...                      dest="downloads")  # doctest: +SKIP

"""

from ._common import PacsError
from ._dicomweb import DicomWeb
from ._dimse import Dimse

__all__ = ["DicomWeb", "Dimse", "PacsError"]
