"""Public sample datasets: registry, download cache and local copies.

:func:`fetch` returns the folder of a registered dataset, found through the
``MEDLAB_DATA`` environment variable (a local copy, never modified) or in the
download cache (``MEDLAB_CACHE``, default ``pooch.os_cache("medlab")``), where
missing files are downloaded from the public origin and checked by SHA-256.
:func:`datasets` lists what is registered, with licences and origins.
"""

from ._fetch import datasets, fetch, files, path

__all__ = ["datasets", "fetch", "files", "path"]
