"""Public sample datasets: registry, download cache and local copies.

:func:`fetch` returns the folder of a registered dataset, found through the
``MEDLAB_DATA`` environment variable (a local copy, never modified), among the
small samples bundled with medlab (the ``...-sample`` datasets: the
repository's ``data/`` folder, or ``medlab/data/samples/`` in a wheel; no
download ever), or in the download cache (``MEDLAB_CACHE``, default
``pooch.os_cache("medlab")``), where missing files are downloaded by pooch from
the public origin (with retries) and kept only once their SHA-256 is right.  :func:`datasets` lists what is
registered, with licences, origins, sizes and which datasets are bundled.
On the command line: ``medlab data list | fetch NAME... | fetch --all | path NAME``.
"""

from pathlib import Path

from . import _fetch
from ._fetch import datasets, fetch, files, path

__all__ = ["datasets", "fetch", "files", "path"]


def cache_root() -> Path:
    """The download cache folder: ``MEDLAB_CACHE``, else ``pooch.os_cache("medlab")``.

    Documented internal API for other medlab subpackages (report provenance); not in
    ``__all__``.
    """
    return _fetch._cache_root()
