"""Loading a CT series: medlab against naive pydicom, SimpleITK and dcm2niix.

Generates a realistic series (headers cloned from a real sts-cohort CT slice,
300 slices of 512x512 int16 with rescale intercept -1024, shuffled file names),
then times each reader in its own fresh process from folder path to an array
in memory, and measures its peak memory growth (ru_maxrss) over the process's
state after imports. Each reader runs ``--repeat`` times (page cache warm);
the best time is reported.

    python benchmarks/bench_load.py            # full size: 300 x 512 x 512
    python benchmarks/bench_load.py --quick    # CI: 40 x 256 x 256, one repeat

``medlab-index`` is ``Index.load_series`` of the same series from a saved cohort
index (scanned before the clock starts): it plans the series from the frames
the index stored, so only the pixels are read (issue 14).

Target (foundation issue): medlab/SimpleITK time ratio <= 0.5, and medlab's
peak memory growth <= 1.5x the volume's own size; Index.load_series faster than
ml.load of the folder (issue 14). The script prints the numbers and never fails
on a ratio.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

READERS = ("medlab", "medlab-index", "pydicom", "pydicom-2proc", "simpleitk", "dcm2niix", "read-floor")
_KEEP_ALIVE: list = []


# ---------------------------------------------------------------- generation
def generate_series(folder: Path, *, n_slices: int, size: int, seed: int = 0) -> None:
    """Write a CT series cloned from a real slice's header, with synthetic pixels."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    import medlab as ml

    template_dir = ml.data.path("sts-cohort", "dicom/STS_002/CT/image")
    template = pydicom.dcmread(sorted(template_dir.iterdir())[0])
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    body = ((yy - size / 2) / (0.42 * size)) ** 2 + ((xx - size / 2) / (0.47 * size)) ** 2 < 1
    series_uid, for_uid = generate_uid(), generate_uid()
    names = rng.permutation(n_slices)  # file names unrelated to slice order
    spacing = 0.7 * 512 / size
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n_slices):
        ds = template.copy()
        ds.file_meta = template.file_meta.copy()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        sop = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.SOPInstanceUID = sop
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = for_uid
        ds.Rows = ds.Columns = size
        ds.PixelSpacing = [f"{spacing:.4f}", f"{spacing:.4f}"]
        ds.SliceThickness = "1.25"
        ds.ImagePositionPatient = [-spacing * size / 2, -spacing * size / 2, -200 + 1.25 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.InstanceNumber = int(n_slices - k)  # descending, as many scanners write it
        ds.SliceLocation = -200 + 1.25 * k
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        pixels = np.where(body, 1024 + 40 + rng.normal(0, 12, (size, size)), 0)
        pixels[size // 3 : size // 2, size // 3 : size // 2] += 300 + k  # a "lesion"
        ds.PixelData = pixels.astype("<i2").tobytes()
        ds.save_as(folder / f"IM{names[k]:05d}", enforce_file_format=True)


# -------------------------------------------------------------------- readers
def read_medlab(folder: Path) -> np.ndarray:
    import medlab as ml

    return ml.load(folder, progress=False).array


def _index_db(folder: Path) -> Path:
    return folder.parent / "index.duckdb"


def index_series(folder: Path) -> None:
    """Scan the folder into a saved cohort index (before any reader is timed)."""
    import medlab as ml

    ml.cohort.scan(folder, db=_index_db(folder), progress=False, workers=1).close()


def _open_index(folder: Path) -> tuple:
    """The saved index (opened, DuckDB warmed up) and the series' UID."""
    import pydicom.pixels  # noqa: F401

    import medlab as ml
    import medlab.io

    idx = ml.cohort.open_index(_index_db(folder), read_only=True)
    uid = str(idx.series["series_uid"].iloc[0])
    idx.files(uid)
    return idx, uid


def read_medlab_index(index: tuple) -> np.ndarray:
    idx, uid = index
    return idx.load_series(uid).array


def read_pydicom(folder: Path) -> np.ndarray:
    """What a user writes without a library: read all, sort by position, stack, rescale."""
    import pydicom

    slices = [pydicom.dcmread(p) for p in sorted(folder.iterdir())]
    normal = np.cross(*np.reshape(np.asarray(slices[0].ImageOrientationPatient, float), (2, 3)))
    slices.sort(key=lambda s: float(np.dot(normal, np.asarray(s.ImagePositionPatient, float))))
    vol = np.stack([s.pixel_array for s in slices])
    slope, inter = float(slices[0].RescaleSlope), float(slices[0].RescaleIntercept)
    return (vol * slope + inter).astype(np.int16)


def _pydicom_part(args: tuple) -> list[tuple[int, float]]:
    """Worker of :func:`read_pydicom_2proc`: headers by pydicom (``stop_before_pixels``),
    pixel bytes ``readinto`` the shared volume at the Pixel Data offset."""
    from multiprocessing import shared_memory

    import pydicom

    paths, shm_name, shape, start = args
    shm = shared_memory.SharedMemory(name=shm_name)
    vol = np.ndarray(shape, dtype="<i2", buffer=shm.buf)
    keys = []
    try:
        for i, path in enumerate(paths, start):
            with open(path, "rb") as f:
                ds = pydicom.dcmread(f, stop_before_pixels=True)
                header = f.read(8)  # (7FE0,0010) tag + implicit length, or tag + VR + 2 bytes
                if header[4:6] in (b"OW", b"OB"):
                    f.read(4)  # explicit VR: the 4-byte length follows
                f.readinto(memoryview(vol[i]).cast("B"))
            keys.append((i, float(ds.ImagePositionPatient[2])))
    finally:
        del vol
        shm.close()
    return keys


def read_pydicom_2proc(folder: Path) -> np.ndarray:
    """The strongest pydicom pipeline we know: 2 worker processes (fork), headers with
    ``stop_before_pixels``, pixel bytes ``readinto`` one shared volume, then sort by
    position and rescale in place (valid for this series: uncompressed little-endian
    int16, axial, slope 1)."""
    import multiprocessing as mp
    from multiprocessing import shared_memory

    import pydicom

    paths = sorted(folder.iterdir())
    first = pydicom.dcmread(paths[0], stop_before_pixels=True)
    shape = (len(paths), int(first.Rows), int(first.Columns))
    shm = shared_memory.SharedMemory(create=True, size=int(np.prod(shape)) * 2)
    try:
        half = len(paths) // 2
        jobs = [(paths[:half], shm.name, shape, 0), (paths[half:], shm.name, shape, half)]
        with mp.get_context("fork").Pool(2) as pool:
            keys = [k for part in pool.map(_pydicom_part, jobs) for k in part]
        order = [i for i, _ in sorted(keys, key=lambda k: k[1])]
        vol = np.ndarray(shape, dtype="<i2", buffer=shm.buf)
        out = vol[order]
        del vol
    finally:
        shm.close()
        shm.unlink()
    out += np.int16(round(float(first.RescaleIntercept)))
    return out


def read_floor(folder: Path) -> np.ndarray:
    """Machine floor: read every file's bytes in Python (no parsing); returns the byte count."""
    total = 0
    for path in folder.iterdir():
        with open(path, "rb") as f:
            total += len(f.read())
    return np.array([total], dtype=np.int64)


def read_simpleitk(folder: Path) -> np.ndarray:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    _KEEP_ALIVE.append(image)  # the view below borrows the image's buffer (no copy)
    return sitk.GetArrayViewFromImage(image)


def read_dcm2niix(folder: Path) -> np.ndarray:
    import nibabel as nib

    with tempfile.TemporaryDirectory() as out:
        subprocess.run(["dcm2niix", "-b", "n", "-z", "n", "-f", "vol", "-o", out, str(folder)],
                       check=True, capture_output=True)
        return np.asanyarray(nib.load(Path(out) / "vol.nii").dataobj)


def _child(reader: str, folder: Path) -> dict:
    fn = {"medlab": read_medlab, "medlab-index": read_medlab_index, "pydicom": read_pydicom, "pydicom-2proc": read_pydicom_2proc,
          "simpleitk": read_simpleitk, "dcm2niix": read_dcm2niix, "read-floor": read_floor}[reader]
    # import everything the reader needs before the clock and the memory baseline start
    if reader == "medlab":
        import pydicom.pixels

        import medlab.io  # noqa: F401  (import medlab alone defers the readers: issue 15)
    elif reader == "medlab-index":
        folder = _open_index(folder)  # type: ignore[assignment]
    elif reader == "simpleitk":
        import SimpleITK  # noqa: F401
    elif reader in ("pydicom", "pydicom-2proc"):
        import pydicom  # noqa: F401
    elif reader == "read-floor":
        pass
    else:
        import nibabel  # noqa: F401
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    arr = fn(folder)
    elapsed = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "time_s": elapsed,
        "peak_growth_mb": (peak - base) / 1024.0,
        "shape": list(arr.shape),
        "dtype": str(arr.dtype),
        "nbytes_mb": arr.nbytes / 2**20,
        "checksum": float(np.asarray(arr, dtype=np.float64).sum()),
    }


def run_reader(reader: str, folder: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", reader, str(folder)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat (CI)")
    parser.add_argument("--slices", type=int)
    parser.add_argument("--size", type=int)
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--child", nargs=2, metavar=("READER", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child[0], Path(args.child[1]))))
        return 0

    n_slices = args.slices or (40 if args.quick else 300)
    size = args.size or (256 if args.quick else 512)
    repeat = args.repeat or (1 if args.quick else 3)
    readers = [r for r in READERS if r != "dcm2niix" or shutil.which("dcm2niix")]
    with tempfile.TemporaryDirectory(prefix="medlab-bench-") as tmp:
        folder = Path(tmp) / "series"
        t0 = time.perf_counter()
        generate_series(folder, n_slices=n_slices, size=size)
        print(f"generated {n_slices} slices of {size}x{size} in {time.perf_counter() - t0:.1f} s "
              f"({sum(p.stat().st_size for p in folder.iterdir()) / 2**20:.0f} MB on disk)")
        index_series(folder)
        results = {}
        for reader in readers:
            runs = [run_reader(reader, folder) for _ in range(repeat)]
            best = min(runs, key=lambda r: r["time_s"])
            best["peak_growth_mb"] = max(r["peak_growth_mb"] for r in runs)
            results[reader] = best
    ref = results["simpleitk"]
    floor = results.pop("read-floor")
    print(f"\n{'reader':<14} {'time s':>8} {'peak MB':>9} {'volume MB':>10}  shape / dtype")
    for reader, r in results.items():
        print(f"{reader:<14} {r['time_s']:>8.3f} {r['peak_growth_mb']:>9.0f} {r['nbytes_mb']:>10.0f}"
              f"  {tuple(r['shape'])} {r['dtype']}")
    print(f"{'floor: read':<14} {floor['time_s']:>8.3f}  (Python open + read of every file's "
          f"{floor['checksum'] / 2**20:.0f} MB, no parsing)")
    same = {r: abs(results[r]["checksum"] - ref["checksum"]) < 1e-6 * max(1, abs(ref["checksum"]))
            for r in results}
    print("\nsame voxel sum as SimpleITK:", ", ".join(f"{r}={'yes' if s else 'NO'}" for r, s in same.items()))
    ml_r = results["medlab"]
    ratio = ml_r["time_s"] / ref["time_s"]
    mem_ratio = ml_r["peak_growth_mb"] / ml_r["nbytes_mb"]
    print(f"ratio medlab/SimpleITK time: {ratio:.2f} (target <= 0.5)")
    for reader in results:
        if reader != "medlab":
            print(f"ratio medlab/{reader} time: {ml_r['time_s'] / results[reader]['time_s']:.2f}")
    print(f"ratio medlab/floor (reading the bytes): {ml_r['time_s'] / floor['time_s']:.2f} "
          "(issue 15 target <= 1.3)")
    print(f"ratio medlab/pydicom-2proc (strongest pydicom pipeline): "
          f"{ml_r['time_s'] / results['pydicom-2proc']['time_s']:.2f} (issue 15 target <= 1.0)")
    print(f"medlab peak memory growth / volume size: {mem_ratio:.2f} (target <= 1.5)")
    print(f"ratio Index.load_series/ml.load time (same series, from the index's stored frames): "
          f"{results['medlab-index']['time_s'] / ml_r['time_s']:.2f} (issue 14 target < 1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
