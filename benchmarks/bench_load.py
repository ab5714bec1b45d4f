"""Loading a CT series: medlab against naive pydicom, SimpleITK and dcm2niix.

Generates a realistic series (headers cloned from a real sts-cohort CT slice,
300 slices of 512x512 int16 with rescale intercept -1024, shuffled file names),
then times each reader in its own fresh process from folder path to an array
in memory, and measures its peak memory growth (ru_maxrss) over the process's
state after imports.

The same series is then compressed by the benchmark itself into each lossless
transfer syntax a scanner or archive writes -- RLE Lossless, JPEG-LS Lossless
(pydicom's ``Dataset.compress`` with its pylibjpeg-rle / pyjpegls / pylibjpeg-openjpeg
encoders), JPEG 2000 Lossless and JPEG Lossless SV1 (python-gdcm's
``ImageChangeTransferSyntax``; pydicom has no JPEG Lossless encoder) -- and each
compressed series is loaded by medlab, naive pydicom (``dcmread`` + ``pixel_array``,
its default plugin per syntax) and dcm2niix, with the read floor beside them.

Peers and their configurations (the strongest we know; issue 15):

- ``pydicom-2proc`` (uncompressed only): 2 worker processes (fork), headers with
  ``stop_before_pixels``, pixel bytes ``readinto`` one shared volume;
- ``dcm2niix``: Debian's v1.0.20220720 (built with OpenJPEG; no CharLS, so no JPEG-LS),
  ``dcm2niix -b n -z n -f vol -o TMP FOLDER`` (no BIDS sidecar, no gzip), timed as the
  whole run plus nibabel reading the .nii it wrote;
- ``SimpleITK`` (uncompressed only): ImageSeriesReader on GDCM's sorted file names.

``medlab-index`` (uncompressed only) is ``Index.load_series`` of the same series from a
saved cohort index (scanned before the clock starts): it plans the series from the frames
the index stored, so only the pixels are read (issue 14).

Floors: ``read-floor`` is a Python open + read of every file (no parsing; each file's
bytes land in a buffer the allocator reuses, so no new memory is touched) -- the floor
issue 15's target is stated against; ``read-floor-new`` reads every file's bytes
(``readinto``) into one newly allocated buffer of their total size, which a loader
cannot avoid (its output is new memory: the page faults of a fresh volume are part of
it); ``read-floor-cores`` is the same with one thread per core (whether spreading the
copy and the page faults over the cores lowers that floor: on the 2-core machine, December
2026, it did not, 0.043 against 0.039 s, the read floor 0.025 s); ``cat-floor`` is
``cat FILES > /dev/null`` (one process, whole run).

``medlab-phases`` (full mode only) is ``ml.load``'s work split into its stages in a fresh
process -- header scan, series planning, pixels (read, stored-value range and rescale)
-- printed per file, so the note on what the rest costs is measured, not guessed.

Timing: ``--repeat`` interleaved rounds (every reader of every syntax once per round,
each in a fresh process, page cache warm); the median per reader is reported, since the
machine may be shared.

    python benchmarks/bench_load.py            # full size: 300 x 512 x 512, 5 rounds
    python benchmarks/bench_load.py --quick    # CI: 40 x 256 x 256, one round

Targets: medlab/SimpleITK time ratio <= 0.5, medlab's peak memory growth <= 1.5x the
volume's own size (foundation issue); uncompressed medlab/pydicom-2proc <= 1.0 and
medlab/read-floor <= 1.3, compressed medlab/dcm2niix <= 1.0 per syntax (issue 15). The
script prints the numbers and never fails on a ratio. Index.load_series faster than
ml.load of the folder (issue 14).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

READERS = ("medlab", "medlab-index", "pydicom", "pydicom-2proc", "simpleitk", "dcm2niix",
           "read-floor", "read-floor-new", "read-floor-cores", "cat-floor")
#: the compressed variants of the series: name -> transfer syntax UID
SYNTAXES = {
    "rle": "1.2.840.10008.1.2.5",
    "jpeg-ls": "1.2.840.10008.1.2.4.80",
    "jpeg2000": "1.2.840.10008.1.2.4.90",
    "jpeg-lossless": "1.2.840.10008.1.2.4.70",
}
COMPRESSED_READERS = ("medlab", "medlab-index", "pydicom", "dcm2niix", "read-floor", "cat-floor")
_KEEP_ALIVE: list = []
_PHASES: dict[str, float] = {}  # medlab-phases: seconds per stage of ml.load
_PHASE_KEYS = ("scan_s", "plan_s", "pixels_s")


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


def _compress_one(job: tuple[Path, Path, str]) -> None:
    """Write one file of ``src`` compressed in transfer syntax ``uid`` to ``dst``."""
    import warnings

    import pydicom

    src, dst, uid = job
    if uid == SYNTAXES["jpeg-lossless"]:
        import gdcm  # pydicom has no JPEG Lossless encoder

        reader = gdcm.ImageReader()
        reader.SetFileName(str(src))
        change = gdcm.ImageChangeTransferSyntax()
        change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGLosslessProcess14_1))
        if not reader.Read() or not (change.SetInput(reader.GetImage()) or change.Change()):
            raise RuntimeError(f"gdcm could not compress {src}")
        writer = gdcm.ImageWriter()
        writer.SetFileName(str(dst))
        writer.SetFile(reader.GetFile())
        writer.SetImage(change.GetOutput())
        if not writer.Write():
            raise RuntimeError(f"gdcm could not write {dst}")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cloned header's over-long SH values
        ds = pydicom.dcmread(src)
        ds.compress(uid)
        ds.save_as(dst, enforce_file_format=True)


def compress_series(src: Path, dst: Path, uid: str) -> None:
    """The series of ``src`` compressed in transfer syntax ``uid`` (2 processes)."""
    import multiprocessing as mp

    dst.mkdir(parents=True, exist_ok=True)
    jobs = [(p, dst / p.name, uid) for p in sorted(src.iterdir())]
    with mp.get_context("fork").Pool(2) as pool:
        pool.map(_compress_one, jobs, chunksize=8)


# -------------------------------------------------------------------- readers
def read_medlab(folder: Path) -> np.ndarray:
    import medlab as ml

    return ml.load(folder, progress=False).array


def _index_db(folder: Path) -> Path:
    """The saved index of one series folder (each compressed variant has its own)."""
    return folder.parent / f"{folder.name}.duckdb"


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


def read_floor_new(folder: Path, *, threads: int = 1) -> np.ndarray:
    """Machine floor with the output's memory: every file's bytes ``readinto`` one newly
    allocated buffer of their total size (no parsing), by ``threads`` threads, each
    reading a share of the files (``readinto`` releases the GIL); returns it."""
    paths = list(folder.iterdir())
    sizes = [p.stat().st_size for p in paths]
    out = np.empty(sum(sizes), dtype=np.uint8)
    starts = np.concatenate([[0], np.cumsum(sizes)])

    def share(first: int) -> None:
        for i in range(first, len(paths), threads):
            with open(paths[i], "rb") as f:
                f.readinto(memoryview(out[starts[i]:starts[i + 1]]))

    if threads == 1:
        share(0)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(share, range(threads)))
    return out


#: threads of the ``read-floor-cores`` floor: every core of the machine
FLOOR_THREADS = os.cpu_count() or 1


def read_medlab_phases(folder: Path) -> np.ndarray:
    """``ml.load``'s stages timed one by one (internal API of medlab.io.dicom); the
    times go into the child's result (:data:`_PHASES`), the array is ``medlab``'s."""
    from medlab.io import dicom

    t0 = time.perf_counter()
    frames, skipped = dicom.scan(folder, progress=False)
    t1 = time.perf_counter()
    plans, problems = dicom.plan_volumes(frames)
    t2 = time.perf_counter()
    images = dicom.read_plans(plans, problems, skipped, progress=False)
    t3 = time.perf_counter()
    _PHASES.update(scan_s=t1 - t0, plan_s=t2 - t1, pixels_s=t3 - t2)
    return next(iter(images.values())).array


def read_cat(folder: Path) -> np.ndarray:
    """Machine floor: ``cat`` every file to /dev/null (one process, whole run)."""
    paths = [str(p) for p in folder.iterdir()]
    subprocess.run(["cat", *paths], check=True, stdout=subprocess.DEVNULL)
    return np.array([sum(os.path.getsize(p) for p in paths)], dtype=np.int64)


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
        run = subprocess.run(["dcm2niix", "-b", "n", "-z", "n", "-f", "vol", "-o", out,
                              str(folder)], capture_output=True, text=True)
        if not (Path(out) / "vol.nii").is_file():  # e.g. JPEG-LS without CharLS
            lines = [ln for ln in run.stdout.splitlines() if ln.startswith(("Warning", "Error"))]
            raise RuntimeError("dcm2niix: " + (lines[0] if lines else run.stdout[-200:]))
        return np.asanyarray(nib.load(Path(out) / "vol.nii").dataobj)


def _child(reader: str, folder: Path) -> dict:
    fn = {"medlab": read_medlab, "medlab-index": read_medlab_index, "pydicom": read_pydicom, "pydicom-2proc": read_pydicom_2proc,
          "simpleitk": read_simpleitk, "dcm2niix": read_dcm2niix, "read-floor": read_floor,
          "read-floor-new": read_floor_new, "cat-floor": read_cat,
          "read-floor-cores": lambda f: read_floor_new(f, threads=FLOOR_THREADS),
          "medlab-phases": read_medlab_phases}[reader]
    # import everything the reader needs before the clock and the memory baseline start
    if reader in ("medlab", "medlab-phases"):
        import pydicom.pixels

        import medlab.io  # noqa: F401  (import medlab alone defers the readers: issue 15)
    elif reader == "medlab-index":
        folder = _open_index(folder)  # type: ignore[assignment]
    elif reader == "simpleitk":
        import SimpleITK  # noqa: F401
    elif reader in ("pydicom", "pydicom-2proc"):
        import pydicom  # noqa: F401
    elif reader in ("read-floor", "read-floor-new", "read-floor-cores", "cat-floor"):
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
        **_PHASES,
    }


def run_reader(reader: str, folder: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", reader, str(folder)],
                         capture_output=True, text=True)
    if out.returncode:  # a peer that cannot read this syntax (dcm2niix without CharLS)
        why = (out.stderr.strip().splitlines() or ["failed"])[-1]
        return {"time_s": float("nan"), "failed": why.removeprefix("RuntimeError: ")[:110]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def decoder_speeds(folder: Path, *, repeat: int) -> list[tuple[str, float]]:
    """(decoder, MB/s) of every installed decoder on one frame of ``folder``: pydicom's
    plugins through ``pixel_array(decoding_plugin=...)`` and the imagecodecs function
    medlab calls, single thread, median CPU time of ``repeat`` interleaved rounds."""
    import warnings

    import imagecodecs
    import pydicom
    import pydicom.pixels
    from pydicom.encaps import generate_frames

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(sorted(folder.iterdir())[0])
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    uid = str(ds.file_meta.TransferSyntaxUID)
    ours = {SYNTAXES["rle"]: lambda: imagecodecs.dicomrle_decode(frame, "<i2"),
            SYNTAXES["jpeg-ls"]: lambda: imagecodecs.jpegls_decode(frame),
            SYNTAXES["jpeg2000"]: lambda: imagecodecs.jpeg2k_decode(frame),
            SYNTAXES["jpeg-lossless"]: lambda: imagecodecs.jpeg8_decode(frame)}[uid]
    fns = {f"pydicom/{name}": (lambda name=name: pydicom.pixels.pixel_array(
        ds, decoding_plugin=name)) for name in pydicom.pixels.get_decoder(uid).available_plugins}
    fns["imagecodecs (medlab)"] = ours
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.process_time()
            fn()
            times[name].append(time.process_time() - t0)
    mb = int(ds.Rows) * int(ds.Columns) * 2 / 2**20
    return [(name, mb / max(statistics.median(t), 1e-9)) for name, t in times.items()]


def _median(runs: list[dict]) -> dict:
    """The median time of a reader's rounds (its largest memory growth)."""
    ok = [r for r in runs if "failed" not in r]
    if not ok:
        return runs[-1]
    out = dict(ok[0])
    for key in ("time_s", *_PHASE_KEYS):
        if key in out:
            out[key] = statistics.median(r[key] for r in ok)
    out["peak_growth_mb"] = max(r["peak_growth_mb"] for r in ok)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one round (CI)")
    parser.add_argument("--slices", type=int)
    parser.add_argument("--size", type=int)
    parser.add_argument("--repeat", type=int, help="interleaved rounds (median reported)")
    parser.add_argument("--syntaxes", default=",".join(SYNTAXES),
                        help="compressed variants to time (comma-separated; '' for none)")
    parser.add_argument("--child", nargs=2, metavar=("READER", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child[0], Path(args.child[1]))))
        return 0

    n_slices = args.slices or (40 if args.quick else 300)
    size = args.size or (256 if args.quick else 512)
    rounds = args.repeat or (1 if args.quick else 5)
    syntaxes = [s for s in args.syntaxes.split(",") if s]
    have_dcm2niix = shutil.which("dcm2niix") is not None
    with tempfile.TemporaryDirectory(prefix="medlab-bench-") as tmp:
        folder = Path(tmp) / "series"
        t0 = time.perf_counter()
        generate_series(folder, n_slices=n_slices, size=size)
        disk = {"uncompressed": sum(p.stat().st_size for p in folder.iterdir()) / 2**20}
        print(f"generated {n_slices} slices of {size}x{size} in {time.perf_counter() - t0:.1f} s "
              f"({disk['uncompressed']:.0f} MB on disk)")
        index_series(folder)
        sets = {"uncompressed": (folder, READERS if args.quick else (*READERS, "medlab-phases"))}
        # quick mode (CI) keeps every decoder of medlab's but only the peer that matters
        compressed_readers = (("medlab", "dcm2niix", "read-floor") if args.quick
                              else COMPRESSED_READERS)
        for name in syntaxes:
            t0 = time.perf_counter()
            compress_series(folder, Path(tmp) / name, SYNTAXES[name])
            sets[name] = (Path(tmp) / name, compressed_readers)
            if "medlab-index" in compressed_readers:
                index_series(Path(tmp) / name)
            disk[name] = sum(p.stat().st_size for p in sets[name][0].iterdir()) / 2**20
            print(f"compressed to {name} ({SYNTAXES[name]}) in {time.perf_counter() - t0:.1f} s "
                  f"({disk[name]:.1f} MB on disk)")
        speeds = {name: decoder_speeds(sets[name][0], repeat=5 if args.quick else 15)
                  for name in syntaxes}
        runs: dict[tuple[str, str], list[dict]] = {}
        for _ in range(rounds):  # interleaved: every reader of every set once per round
            for name, (where, readers) in sets.items():
                for reader in readers:
                    if reader == "dcm2niix" and not have_dcm2niix:
                        continue
                    runs.setdefault((name, reader), []).append(run_reader(reader, where))
    res = {key: _median(v) for key, v in runs.items()}
    print(f"\nmedians of {rounds} interleaved round(s), each reader in a fresh process")

    # ---- uncompressed
    results = {r: res["uncompressed", r] for r in READERS if ("uncompressed", r) in res}
    ref = results["simpleitk"]
    floor, cat = results.pop("read-floor"), results.pop("cat-floor")
    floor_new = results.pop("read-floor-new")
    floor_cores = results.pop("read-floor-cores")
    phases = res.get(("uncompressed", "medlab-phases"))
    print(f"\n{'reader':<14} {'time s':>8} {'peak MB':>9} {'volume MB':>10}  shape / dtype")
    for reader, r in results.items():
        print(f"{reader:<14} {r['time_s']:>8.3f} {r['peak_growth_mb']:>9.0f} {r['nbytes_mb']:>10.0f}"
              f"  {tuple(r['shape'])} {r['dtype']}")
    print(f"{'floor: read':<14} {floor['time_s']:>8.3f}  (Python open + read of every file's "
          f"{floor['checksum'] / 2**20:.0f} MB, no parsing)")
    print(f"{'floor: new':<14} {floor_new['time_s']:>8.3f}  (the same bytes readinto one newly "
          "allocated buffer: the output's memory included)")
    print(f"{'floor: cores':<14} {floor_cores['time_s']:>8.3f}  (the same by {FLOOR_THREADS} "
          "threads, one per core)")
    print(f"{'floor: cat':<14} {cat['time_s']:>8.3f}  (cat FILES > /dev/null, whole run)")
    if phases is not None and "failed" not in phases:
        per_file = 1e6 / n_slices
        print(f"ml.load by stage (fresh process, medians): header scan {phases['scan_s']:.3f} s "
              f"({phases['scan_s'] * per_file:.0f} us/file), planning {phases['plan_s']:.3f} s, "
              f"pixels (read, range, rescale) {phases['pixels_s']:.3f} s; the floors per file: "
              f"read {floor['time_s'] * per_file:.0f} us, new memory "
              f"{floor_new['time_s'] * per_file:.0f} us")

    def same(r: dict) -> str:
        if "failed" in r:
            return "n/a"
        return "yes" if abs(r["checksum"] - ref["checksum"]) < 1e-6 * max(1, abs(ref["checksum"])) else "NO"

    sums = [f"{r}={same(v)}" for r, v in results.items()]
    sums += [f"{n}/{r}={same(res[n, r])}" for n in syntaxes
             for r in ("medlab", "medlab-index", "pydicom", "dcm2niix")
             if (n, r) in res]
    print("\nsame voxel sum as SimpleITK:", ", ".join(sums))
    ml_r = results["medlab"]
    ratio = ml_r["time_s"] / ref["time_s"]
    mem_ratio = ml_r["peak_growth_mb"] / ml_r["nbytes_mb"]
    print(f"ratio medlab/SimpleITK time: {ratio:.2f} (target <= 0.5)")
    for reader in results:
        if reader != "medlab":
            print(f"ratio medlab/{reader} time: {ml_r['time_s'] / results[reader]['time_s']:.2f}")
    print(f"ratio medlab/floor (reading the bytes): {ml_r['time_s'] / floor['time_s']:.2f} "
          "(issue 15 target <= 1.3); against the floor with the output's new memory: "
          f"{ml_r['time_s'] / floor_new['time_s']:.2f} (one thread), "
          f"{ml_r['time_s'] / floor_cores['time_s']:.2f} ({FLOOR_THREADS} threads); the "
          f"new-memory floors themselves are {floor_new['time_s'] / floor['time_s']:.2f}x and "
          f"{floor_cores['time_s'] / floor['time_s']:.2f}x the read floor")
    print(f"ratio medlab/pydicom-2proc (strongest pydicom pipeline): "
          f"{ml_r['time_s'] / results['pydicom-2proc']['time_s']:.2f} (issue 15 target <= 1.0)")
    print(f"medlab peak memory growth / volume size: {mem_ratio:.2f} (target <= 1.5)")
    print(f"ratio Index.load_series/ml.load time (same series, from the index's stored frames): "
          f"{results['medlab-index']['time_s'] / ml_r['time_s']:.2f} (issue 14 target < 1)")

    # ---- compressed: time, decoded MB/s (the int16 volume per second), ratios
    if syntaxes:
        vol_mb = n_slices * size * size * 2 / 2**20
        print(f"\ncompressed series ({vol_mb:.0f} MB decoded); MB/s = decoded MB per second")
        print(f"{'syntax':<14} {'disk MB':>8} {'reader':<10} {'time s':>8} {'MB/s':>8}  medlab/reader")
        for name in syntaxes:
            ml_t = res[name, "medlab"]["time_s"]
            for reader in COMPRESSED_READERS:
                r = res.get((name, reader))
                if r is None:
                    continue
                label = f"{name:<14} {disk[name]:>8.1f}" if reader == "medlab" else " " * 23
                if "failed" in r:
                    print(f"{label} {reader:<10} {'n/a':>8}  ({r['failed']})")
                    continue
                t = r["time_s"]
                print(f"{label} {reader:<10} {t:>8.3f} {vol_mb / t:>8.0f}  {ml_t / t:>6.2f}")
        print("\ndecoders on one frame, single thread (MB/s of decoded frame per CPU second, "
              "median; pydicom's include its own overhead):")
        for name in syntaxes:
            print(f"  {name:<14} " + ", ".join(f"{d} {v:.0f}" for d, v in speeds[name]))
        for name in syntaxes:
            peer = res.get((name, "dcm2niix"), {"failed": "not installed"})
            ml_t = res[name, "medlab"]["time_s"]
            vs = "n/a (" + peer["failed"] + ")" if "failed" in peer else f"{ml_t / peer['time_s']:.2f}"
            naive = res.get((name, "pydicom"))
            vs_naive = f"; medlab/pydicom {ml_t / naive['time_s']:.2f}" if naive else ""
            print(f"ratio medlab/dcm2niix {name}: {vs} (issue 15 target <= 1.0){vs_naive}; "
                  f"medlab/read-floor {ml_t / res[name, 'read-floor']['time_s']:.2f}; medlab "
                  f"decodes {vol_mb / ml_t:.0f} MB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
