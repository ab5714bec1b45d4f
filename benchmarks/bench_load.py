"""Loading a CT series: medlab against naive pydicom, SimpleITK and dcm2niix.

Generates a realistic series (headers cloned from a real sts-cohort CT slice,
300 slices of 512x512 int16 with rescale intercept -1024, shuffled file names),
then times each reader in its own fresh process from folder path to an array
in memory, and measures its peak memory growth (ru_maxrss) over the process's
state after imports. Each reader runs ``--repeat`` times (page cache warm);
the best time is reported.

    python benchmarks/bench_load.py            # full size: 300 x 512 x 512
    python benchmarks/bench_load.py --quick    # CI: 40 x 256 x 256, one repeat

Target (foundation issue): medlab/SimpleITK time ratio <= 0.5, and medlab's
peak memory growth <= 1.5x the volume's own size. The script prints the
numbers and never fails on a ratio.
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

READERS = ("medlab", "pydicom", "simpleitk", "dcm2niix")
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


def read_pydicom(folder: Path) -> np.ndarray:
    """What a user writes without a library: read all, sort by position, stack, rescale."""
    import pydicom

    slices = [pydicom.dcmread(p) for p in sorted(folder.iterdir())]
    normal = np.cross(*np.reshape(np.asarray(slices[0].ImageOrientationPatient, float), (2, 3)))
    slices.sort(key=lambda s: float(np.dot(normal, np.asarray(s.ImagePositionPatient, float))))
    vol = np.stack([s.pixel_array for s in slices])
    slope, inter = float(slices[0].RescaleSlope), float(slices[0].RescaleIntercept)
    return (vol * slope + inter).astype(np.int16)


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
    fn = {"medlab": read_medlab, "pydicom": read_pydicom, "simpleitk": read_simpleitk,
          "dcm2niix": read_dcm2niix}[reader]
    # import everything the reader needs before the clock and the memory baseline start
    if reader == "medlab":
        import pydicom.pixels

        import medlab  # noqa: F401
    elif reader == "simpleitk":
        import SimpleITK  # noqa: F401
    elif reader == "pydicom":
        import pydicom  # noqa: F401
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
        results = {}
        for reader in readers:
            runs = [run_reader(reader, folder) for _ in range(repeat)]
            best = min(runs, key=lambda r: r["time_s"])
            best["peak_growth_mb"] = max(r["peak_growth_mb"] for r in runs)
            results[reader] = best
    ref = results["simpleitk"]
    print(f"\n{'reader':<10} {'time s':>8} {'peak MB':>9} {'volume MB':>10}  shape / dtype")
    for reader, r in results.items():
        print(f"{reader:<10} {r['time_s']:>8.3f} {r['peak_growth_mb']:>9.0f} {r['nbytes_mb']:>10.0f}"
              f"  {tuple(r['shape'])} {r['dtype']}")
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
    print(f"medlab peak memory growth / volume size: {mem_ratio:.2f} (target <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
