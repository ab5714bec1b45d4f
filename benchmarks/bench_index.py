"""Indexing DICOM headers: medlab's cohort scan against pydicom and SimpleITK loops.

Generates a folder of realistic CT files (headers cloned from the real
sts-cohort CT slices of all five patients: 100 series of 100 slices, each
series with its own patient, study, series and SOP UIDs and positions;
small 64x64 pixel data, since only headers are read), then times each
contender in its own fresh process from folder path to a table of headers
(imports done before the clock starts, page cache warm):

- ``medlab``: ``ml.cohort.scan(folder)`` — the index in (in-memory) DuckDB with
  the per-series geometry, local worker processes (default: all cores);
- ``medlab-1proc``: the same with ``workers=1`` (one core);
- ``pydicom``: ``pydicom.dcmread(path, stop_before_pixels=True)`` over the files;
- ``simpleitk``: ``sitk.ImageFileReader().ReadImageInformation()`` over the files;
- ``rescan``: reopening the saved index and ``index.rescan()`` with nothing changed;
- ``bucket``: the same files as objects in an S3-compatible server on 127.0.0.1
  (s3rver, when installed), indexed by ``ml.cohort.scan_bucket`` with ranged reads
  of the headers (one process; the files/s of a bucket scan next to the folder scan).

    python benchmarks/bench_index.py            # 10,000 files (100 series x 100)
    python benchmarks/bench_index.py --quick    # CI: 500 files (10 series x 50)

Targets (cohort issue): medlab at least 5x the files/s of the pydicom loop on
2 cores, and a rescan with nothing changed under 1 s. The script prints the
numbers and never fails on a ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

CONTENDERS = ("medlab", "medlab-1proc", "pydicom", "simpleitk")


# ---------------------------------------------------------------- generation
def generate(folder: Path, *, n_series: int, n_slices: int, size: int = 64, seed: int = 0) -> int:
    """Write ``n_series`` CT series cloned from the real sts-cohort CT headers."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    import medlab as ml

    root = ml.data.fetch("sts-cohort", progress=False)
    templates = [pydicom.dcmread(sorted((root / "dicom" / p / "CT" / "image").iterdir())[0])
                 for p in ("STS_002", "STS_008", "STS_019", "STS_025", "STS_042")]
    warnings.simplefilter("ignore")  # the templates' over-long values, kept as they are
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 2000, (size, size), dtype=np.int16).astype("<i2").tobytes()
    n = 0
    for s in range(n_series):
        template = templates[s % len(templates)]
        patient = f"BENCH{s // 4:03d}"  # 4 series per patient
        study_uid = generate_uid(entropy_srcs=[patient, str(seed)])
        series_uid, for_uid = generate_uid(), generate_uid()
        thickness = float(rng.choice([1.25, 2.5, 3.27, 5.0]))
        spacing = float(rng.choice([0.7, 0.78, 0.98]))
        z0 = float(rng.uniform(-800, -100))
        series_dir = folder / patient / f"series{s:03d}"
        series_dir.mkdir(parents=True, exist_ok=True)
        names = rng.permutation(n_slices)
        for k in range(n_slices):
            ds = template.copy()
            ds.file_meta = template.file_meta.copy()
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            sop = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = sop
            ds.SOPInstanceUID = sop
            ds.PatientID = ds.PatientName = patient
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
            ds.FrameOfReferenceUID = for_uid
            ds.SeriesNumber = s + 1
            ds.InstanceNumber = n_slices - k
            ds.Rows = ds.Columns = size
            ds.PixelSpacing = [f"{spacing:g}", f"{spacing:g}"]
            ds.SliceThickness = f"{thickness:g}"
            ds.ImagePositionPatient = [f"{-spacing * size / 2:g}", f"{-spacing * size / 2:g}",
                                       f"{z0 + thickness * k:.2f}"]
            ds.SliceLocation = f"{z0 + thickness * k:.2f}"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
            ds.PixelData = pixels
            ds.save_as(series_dir / f"IM{names[k]:05d}.dcm", enforce_file_format=True)
            n += 1
    return n


# ---------------------------------------------------------------- contenders
def _files(folder: Path) -> list[str]:
    out = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        out += [os.path.join(root, f) for f in sorted(files)]
    return out


def run_medlab(folder: Path, workers: int | None) -> dict:
    import medlab as ml

    t0 = time.perf_counter()
    index = ml.cohort.scan(folder, progress=False, workers=workers)
    elapsed = time.perf_counter() - t0
    n = len(index.instances)
    volumes = int(index.series["is_volume"].sum())
    return {"time_s": elapsed, "n_files": n, "note": f"{volumes} regular volumes"}


def run_pydicom(folder: Path) -> dict:
    import pydicom

    t0 = time.perf_counter()
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in _files(folder)]
    elapsed = time.perf_counter() - t0
    return {"time_s": elapsed, "n_files": len(headers), "note": "unparsed (lazy) datasets"}


def run_simpleitk(folder: Path) -> dict:
    import SimpleITK as sitk

    t0 = time.perf_counter()
    n = 0
    reader = sitk.ImageFileReader()
    for p in _files(folder):
        reader.SetFileName(p)
        reader.ReadImageInformation()
        n += 1
    elapsed = time.perf_counter() - t0
    return {"time_s": elapsed, "n_files": n, "note": "ReadImageInformation"}


def run_rescan(db: Path) -> dict:
    import medlab as ml

    t0 = time.perf_counter()
    index = ml.cohort.open_index(db)
    t1 = time.perf_counter()
    report = index.rescan(progress=False)
    elapsed = time.perf_counter() - t1
    index.close()
    return {"time_s": elapsed, "open_s": t1 - t0, "n_files": report.n_files_seen,
            "note": f"{report.n_new + report.n_changed} files read, {report.n_removed} removed"}


def run_bucket(endpoint: str) -> dict:
    import medlab as ml

    t0 = time.perf_counter()
    index = ml.cohort.scan_bucket(f"s3://{BUCKET}/", endpoint=endpoint, anonymous=True,
                                  progress=False)
    elapsed = time.perf_counter() - t0
    stats = index.last_bucket_scan
    return {"time_s": elapsed, "n_files": stats["n_indexed"],
            "note": f"{stats['bytes_read'] / 2**20:.1f} of {stats['bytes_total'] / 2**20:.0f} MB "
                    "read (ranged header reads)"}


BUCKET = "medlab-bench"


@contextlib.contextmanager
def s3_server(folder: Path, data: Path):
    """s3rver on 127.0.0.1 holding the files of ``folder``; yields the endpoint (or None)."""
    exe = shutil.which("s3rver")
    if exe is None:
        yield None
        return
    import obstore

    import medlab as ml

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([exe, "--address", "127.0.0.1", "--port", str(port), "--silent",
                             "--directory", str(data), "--configure-bucket", BUCKET],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(150):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        endpoint = f"http://127.0.0.1:{port}"
        store = ml.cohort.bucket_store(BUCKET, endpoint=endpoint, anonymous=True)
        for p in _files(folder):
            obstore.put(store, Path(p).relative_to(folder).as_posix(), Path(p).read_bytes())
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _child(contender: str, target: Path | str) -> dict:
    # import everything before the clock starts
    import duckdb  # noqa: F401
    import pyarrow  # noqa: F401
    import pydicom  # noqa: F401

    import medlab.cohort._index  # noqa: F401
    if contender == "medlab":
        return run_medlab(target, None)
    if contender == "medlab-1proc":
        return run_medlab(target, 1)
    if contender == "pydicom":
        return run_pydicom(target)
    if contender == "simpleitk":
        import SimpleITK  # noqa: F401

        return run_simpleitk(target)
    if contender == "rescan":
        return run_rescan(target)
    if contender == "bucket":
        import obstore  # noqa: F401

        return run_bucket(str(target))
    raise ValueError(contender)


def run(contender: str, target: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", contender, str(target)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 files, one repeat (CI)")
    parser.add_argument("--series", type=int)
    parser.add_argument("--slices", type=int)
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--child", nargs=2, metavar=("CONTENDER", "TARGET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        contender, target = args.child
        print(json.dumps(_child(contender, target if contender == "bucket" else Path(target))))
        return 0

    n_series = args.series or (10 if args.quick else 100)
    n_slices = args.slices or (50 if args.quick else 100)
    repeat = args.repeat or (1 if args.quick else 2)
    with tempfile.TemporaryDirectory(prefix="medlab-bench-index-") as tmp:
        folder = Path(tmp) / "dicom"
        t0 = time.perf_counter()
        n = generate(folder, n_series=n_series, n_slices=n_slices)
        size_mb = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20
        print(f"generated {n} files ({n_series} series x {n_slices} slices, {size_mb:.0f} MB) in "
              f"{time.perf_counter() - t0:.1f} s on {os.cpu_count()} CPU(s)")
        results = {}
        for contender in CONTENDERS:
            runs = [run(contender, folder) for _ in range(repeat)]
            results[contender] = min(runs, key=lambda r: r["time_s"])
        # the saved index, then a rescan with nothing changed
        import medlab as ml

        db = Path(tmp) / "index.duckdb"
        ml.cohort.scan(folder, db=db, progress=False).close()
        results["rescan"] = min((run("rescan", db) for _ in range(repeat)),
                                key=lambda r: r["time_s"])
        with s3_server(folder, Path(tmp) / "s3") as endpoint:
            if endpoint is None:
                print("bucket scan not run: s3rver is not installed (npm install -g s3rver)")
            else:
                results["bucket"] = min((run("bucket", endpoint) for _ in range(repeat)),
                                        key=lambda r: r["time_s"])

    print(f"\n{'contender':<14} {'files':>7} {'time s':>8} {'files/s':>9}  note")
    for name, r in results.items():
        rate = r["n_files"] / r["time_s"] if r["time_s"] else float("inf")
        print(f"{name:<14} {r['n_files']:>7} {r['time_s']:>8.3f} {rate:>9.0f}  {r['note']}")
    same = all(r["n_files"] == n for r in results.values())
    print(f"\nall contenders saw all {n} files: {'yes' if same else 'NO'}")

    def rate(name: str) -> float:
        return results[name]["n_files"] / results[name]["time_s"]

    print(f"ratio medlab/pydicom files per second: {rate('medlab') / rate('pydicom'):.2f} "
          "(target >= 5 on 2 cores)")
    print(f"ratio medlab/simpleitk files per second: {rate('medlab') / rate('simpleitk'):.2f}")
    print(f"ratio medlab-1proc/pydicom files per second: "
          f"{rate('medlab-1proc') / rate('pydicom'):.2f}")
    if "bucket" in results:
        print(f"bucket scan (s3rver on 127.0.0.1, 1 process): {rate('bucket'):.0f} files/s, "
              f"ratio bucket/folder (medlab-1proc): {rate('bucket') / rate('medlab-1proc'):.2f}")
    print(f"rescan with nothing changed: {results['rescan']['time_s']:.3f} s for {n} files "
          f"(target < 1 s; opening the index took {results['rescan']['open_s']:.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
