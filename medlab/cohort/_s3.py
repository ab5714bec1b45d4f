"""DICOM in S3-compatible object storage: index headers with ranged reads, fetch series.

Objects are read with ``obstore`` (Rust's ``object_store``: AWS S3, MinIO, Ceph, Google
Cloud Storage's S3 API, ...). A scan lists a bucket prefix and reads only the first bytes
of each object -- doubling the range until the header up to the pixel data is in -- never
whole downloads. Rows go into the index like PACS query results, marked
``source='remote:s3://<bucket>'``, with the object's URL as ``path``.

IDC lays its public data out as ``s3://<aws_bucket>/<crdc_series_uuid>/<instance>.dcm``
(``aws_bucket`` and ``crdc_series_uuid`` are columns of IDC's index);
:func:`download_idc_series` fetches a series that way, from the real buckets by default
(``endpoint="https://s3.amazonaws.com"``, unsigned requests) or from any S3-compatible
endpoint holding the same layout.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MissingDependencyError

if TYPE_CHECKING:
    from ._index import Index

__all__ = ["bucket_store", "download_idc_series", "fetch_bucket_series", "read_objects",
           "scan_bucket"]

AWS_ENDPOINT = "https://s3.amazonaws.com"
_PIXEL_TAGS = (b"\xe0\x7f\x10\x00", b"\xe0\x7f\x08\x00", b"\xe0\x7f\x09\x00")
_INSTALL = "pip install 'medlab[cohort]' (or pip install obstore)"


def _split(url: str) -> tuple[str, str]:
    if not isinstance(url, str) or not url.startswith("s3://"):
        raise ValueError(f"expected an s3://bucket/prefix URL, got {url!r}")
    bucket, _, prefix = url[5:].partition("/")
    if not bucket:
        raise ValueError(f"the URL {url!r} names no bucket; e.g. 's3://my-bucket/cohort/'")
    return bucket, prefix


def bucket_store(bucket: str, *, endpoint: str | None = None, anonymous: bool | None = None,
                 access_key_id: str | None = None, secret_access_key: str | None = None,
                 region: str = "us-east-1") -> Any:
    """An ``obstore`` S3 store for a bucket.

    Parameters
    ----------
    bucket : str
        Bucket name.
    endpoint : str, optional
        S3-compatible endpoint (e.g. ``'http://127.0.0.1:9000'`` for a MinIO);
        default: AWS S3.
    anonymous : bool, optional
        Unsigned requests (public buckets such as IDC's ``idc-open-data``);
        default: True when no keys are given and none are in the environment
        (``AWS_ACCESS_KEY_ID``).
    access_key_id, secret_access_key : str, optional
        Credentials; default: from the environment, as AWS tools read them.
    region : str
        The bucket's region.
    """
    try:
        from obstore.store import S3Store
    except ImportError as exc:
        raise MissingDependencyError(f"object storage needs obstore; {_INSTALL}") from exc
    if anonymous is None:
        anonymous = access_key_id is None and "AWS_ACCESS_KEY_ID" not in os.environ
    kw: dict[str, Any] = {"region": region, "skip_signature": bool(anonymous)}
    if access_key_id is not None:
        kw.update(access_key_id=access_key_id, secret_access_key=secret_access_key)
    if endpoint is not None:
        kw.update(endpoint=endpoint, virtual_hosted_style_request=False)
        if endpoint.startswith("http://"):
            kw["client_options"] = {"allow_http": "true"}
    return S3Store(bucket, **kw)


#: ranged header requests in flight at once per reading process
_REQUESTS_IN_FLIGHT = 16


def _read_header(store: Any, key: str, size: int, first: int) -> tuple[Any, int]:
    """Parse an object's header from ranged reads; returns (dataset, bytes read)."""
    import obstore
    import pydicom

    n = min(first, size)
    while True:
        data = bytes(obstore.get_range(store, key, start=0, end=n)) if n else b""
        complete = n >= size or any(t in data for t in _PIXEL_TAGS)
        if complete:
            ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
            if n < size or any(t in data for t in _PIXEL_TAGS):
                ds._medlab_has_pixels = True  # type: ignore[attr-defined]
            return ds, n
        n = min(2 * n, size)


def read_objects(items: list[tuple[str, int, int]], bucket: str, store_kw: dict[str, Any],
                 header_bytes: int) -> dict[str, Any]:
    """Read the headers of bucket objects (a chunk of a scan; runs on dask workers too).

    ``items`` are ``(key, size, mtime_ns)``; returns ``rows`` (instance rows as dicts),
    ``errors`` (key, reason) and ``bytes_read``.
    """
    from concurrent.futures import ThreadPoolExecutor

    from ._scan import _row_from_dataset
    from ._schema import INSTANCE_COLUMNS, column_names

    store = bucket_store(bucket, **store_kw)
    names = column_names(INSTANCE_COLUMNS)
    rows, errors, read = [], [], 0

    def fetch(item: tuple[str, int, int]) -> tuple[Any, int, BaseException | None]:
        try:
            return (*_read_header(store, item[0], item[1], header_bytes), None)
        except Exception as exc:
            return None, 0, exc

    # the requests wait on the network, not the CPU (obstore releases the GIL): several in
    # flight at once, results in the order of ``items``
    with ThreadPoolExecutor(max_workers=max(1, min(_REQUESTS_IN_FLIGHT, len(items)))) as pool:
        fetched = list(pool.map(fetch, items))
    for (key, size, mtime), (ds, n, problem) in zip(items, fetched, strict=True):
        try:
            if problem is not None:
                raise problem
            read += n
            row = _row_from_dataset(ds, f"s3://{bucket}/{key}", size, mtime)
        except Exception as exc:
            errors.append((key, f"{type(exc).__name__}: {exc}"))
            continue
        rec = dict(zip(names, row, strict=True))
        if rec.get("series_uid") is None:
            errors.append((key, "no SeriesInstanceUID: not a DICOM instance"))
            continue
        if rec.get("n_frames") is None and getattr(ds, "_medlab_has_pixels", False):
            rec["n_frames"] = 1
        rows.append(rec)
    return {"rows": rows, "errors": errors, "bytes_read": read}


def scan_bucket(url: str, *, index: Index | None = None, endpoint: str | None = None,
                anonymous: bool | None = None, access_key_id: str | None = None,
                secret_access_key: str | None = None, header_bytes: int = 65536,
                client: Any = None, progress: bool = True) -> Index:
    """Index the DICOM objects under an S3 prefix, reading headers with ranged requests.

    Parameters
    ----------
    url : str
        ``s3://bucket/prefix``.
    index : medlab.cohort.Index, optional
        Add the rows to this index (default: a new in-memory one).
    endpoint, anonymous, access_key_id, secret_access_key
        Where and how to connect (see :func:`bucket_store`); the workers of a
        dask cluster connect the same way.
    header_bytes : int
        First range read per object; doubled while the header goes on.
    client : dask.distributed.Client or str, optional
        Read the headers on this dask cluster (a Client or a scheduler
        address), as :func:`medlab.cohort.scan` does with folders.
    progress : bool
        Show a progress bar.

    Returns
    -------
    Index
        With ``last_bucket_scan``: a dict of ``n_objects``, ``n_indexed``,
        ``bytes_read``, ``bytes_total``, ``seconds`` and ``errors``
        (key and reason of every object that is not DICOM).

    Examples
    --------
    >>> index = ml.cohort.scan_bucket("s3://idc-open-data/<crdc_series_uuid>/")  # doctest: +SKIP
    """
    import time

    import obstore
    import pandas as pd
    from tqdm.auto import tqdm

    from ._index import Index as _Index
    from ._index import _connect
    from ._read import _chunks, _dask_client, _dask_workers

    if not isinstance(header_bytes, int) or header_bytes < 132:
        raise ValueError(f"header_bytes must be an integer >= 132, got {header_bytes!r}")
    bucket, prefix = _split(url)
    store_kw = {"endpoint": endpoint, "anonymous": anonymous, "access_key_id": access_key_id,
                "secret_access_key": secret_access_key}
    store = bucket_store(bucket, **store_kw)
    t0 = time.perf_counter()
    objects = [o for batch in obstore.list(store, prefix=prefix or None) for o in batch]
    items = [(o["path"], int(o["size"]), int(o["last_modified"].timestamp() * 1e9))
             for o in objects]
    bar = tqdm(total=len(items), desc="reading headers", unit="object", disable=not progress)
    parts: list[dict[str, Any]] = []
    try:
        if client is not None and items:
            from dask.distributed import as_completed

            client, own = _dask_client(client)
            try:
                chunks = _chunks(items, _dask_workers(client))
                futures = client.map(read_objects, chunks, bucket=bucket, store_kw=store_kw,
                                     header_bytes=header_bytes, pure=False)
                size_of = {f.key: len(c) for f, c in zip(futures, chunks, strict=True)}
                order = {f.key: i for i, f in enumerate(futures)}
                done: dict[int, dict[str, Any]] = {}
                for fut in as_completed(futures):
                    done[order[fut.key]] = fut.result()
                    bar.update(size_of[fut.key])
                parts = [done[i] for i in range(len(chunks))]
            finally:
                if own:
                    client.close()
        else:
            for chunk in _chunks(items, 1):
                parts.append(read_objects(chunk, bucket, store_kw, header_bytes))
                bar.update(len(chunk))
    finally:
        bar.close()
    rows = [r for part in parts for r in part["rows"]]
    errors = [e for part in parts for e in part["errors"]]
    read = sum(part["bytes_read"] for part in parts)
    if index is None:
        con, db_path = _connect(None)
        index = _Index(con, db_path)
    source = f"s3://{bucket}"
    if rows:
        df = pd.DataFrame(rows).drop(columns=["source", "file_size", "mtime_ns"])
        index.add_remote(df, source=source)
        # the object sizes are known: series_size_MB and friends need them
        sizes = pd.DataFrame({"path": [r["path"] for r in rows],
                              "size": [r["file_size"] for r in rows],
                              "mtime": [r["mtime_ns"] for r in rows]})
        cur = index._con.cursor()
        try:
            cur.register("_sizes", sizes)
            cur.execute("UPDATE instances SET file_size = s.size, mtime_ns = s.mtime FROM _sizes s "
                        "WHERE instances.path = s.path AND instances.source = ?",
                        [f"remote:{source}"])
        finally:
            cur.close()
    index.last_bucket_scan = {  # type: ignore[attr-defined]
        "n_objects": len(objects), "n_indexed": len(rows), "bytes_read": read,
        "bytes_total": sum(size for _, size, _ in items),
        "seconds": time.perf_counter() - t0, "errors": errors}
    return index


def fetch_bucket_series(index: Index, series_uid: str, dest: str | os.PathLike, *,
                        endpoint: str | None = None, anonymous: bool | None = None,
                        access_key_id: str | None = None,
                        secret_access_key: str | None = None) -> list[Path]:
    """Download the objects of a series indexed by :func:`scan_bucket` into a folder.

    Returns the local files (``index.update(dest)`` indexes them;
    ``ml.load(dest)`` loads the series).
    """
    rows = index.sql("SELECT path FROM instances WHERE path LIKE 's3://%' AND series_uid = "
                     f"'{str(series_uid).replace(chr(39), '')}' ORDER BY path")
    if rows.empty:
        raise KeyError(f"no bucket objects of series {series_uid!r} in the index; scan the "
                       "bucket with medlab.cohort.scan_bucket first")
    out = []
    stores: dict[str, Any] = {}
    for url in rows["path"]:
        bucket, key = _split(url)
        if bucket not in stores:
            stores[bucket] = bucket_store(bucket, endpoint=endpoint, anonymous=anonymous,
                                          access_key_id=access_key_id,
                                          secret_access_key=secret_access_key)
        out.append(_download(stores[bucket], key, Path(dest) / Path(key).name))
    return out


def _download(store: Any, key: str, target: Path) -> Path:
    import obstore

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    with open(tmp, "wb") as f:
        for chunk in obstore.get(store, key):
            f.write(chunk)
    os.replace(tmp, target)
    return target


def download_idc_series(series_uid: str, dest: str | os.PathLike, *,
                        endpoint: str = AWS_ENDPOINT) -> list[Path]:
    """Download an IDC series the way IDC lays it out in its buckets.

    Parameters
    ----------
    series_uid : str
        ``SeriesInstanceUID`` of a series in IDC's index (current or prior
        versions, as bundled by idc-index-data).
    dest : path
        Folder to write the instances to (``<dest>/<instance>.dcm``).
    endpoint : str
        S3 endpoint; default AWS, where IDC's public buckets are (requests
        are unsigned). Point it at a mirror holding the same layout.

    Returns
    -------
    list of pathlib.Path
    """
    from ._idc import idc_sql

    uid = str(series_uid).replace("'", "")
    hit = idc_sql(
        "SELECT aws_bucket, crdc_series_uuid FROM idc_index WHERE SeriesInstanceUID = "
        f"'{uid}' UNION ALL SELECT aws_bucket, crdc_series_uuid FROM prior_versions_index "
        f"WHERE SeriesInstanceUID = '{uid}'")
    if hit.empty:
        raise KeyError(f"series {series_uid!r} is not in IDC's index (version "
                       "of the installed idc-index-data); check ml.cohort.idc_sql")
    bucket, uuid = hit.iloc[0]["aws_bucket"], hit.iloc[0]["crdc_series_uuid"]
    import obstore

    store = bucket_store(bucket, endpoint=endpoint, anonymous=True)
    keys = [o["path"] for batch in obstore.list(store, prefix=f"{uuid}/") for o in batch]
    if not keys:
        raise FileNotFoundError(f"no objects under s3://{bucket}/{uuid}/ at {endpoint}")
    return [_download(store, k, Path(dest) / Path(k).name) for k in sorted(keys)]

