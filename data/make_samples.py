"""Make the small sample datasets bundled in ``data/`` from the public datasets.

Usage (from the repository root, with the full datasets reachable through
``ml.data``, e.g. ``MEDLAB_DATA=/path/to/shared/data``)::

    python data/make_samples.py            # (re)writes data/<sample>/...
    python -m medlab.data._make_registry /path/to/shared/data   # then re-register

Every sample is derived from one registered dataset, read through
:mod:`medlab.data` (so its SHA-256 sums are checked first):

* whole files are copied byte for byte (a subset of the dataset's files);
* DICOM series are *cropped*: a box of (slices, rows, columns) around the
  tumour contour; each kept slice keeps its pixel values exactly, its
  ImagePositionPatient moves by the crop offset along the direction cosines,
  Rows/Columns shrink, and it becomes a DERIVED image with new, deterministic
  Series/SOP Instance UIDs; the RT structure sets are rewritten to reference
  the new UIDs (and only the slices kept);
* multi-frame DICOM objects keep their first frames (JPEG fragments are copied
  without re-encoding; per-frame functional groups are cut to match).

The output is deterministic: running the script again rewrites identical bytes
(UIDs come from :func:`pydicom.uid.generate_uid` with fixed entropy sources;
nothing depends on the clock).  Each sample folder gets a ``SOURCE.txt``
naming the origin, the licence and the derivation.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import generate_uid

import medlab as ml

HERE = Path(__file__).resolve().parent
SCRIPT = "data/make_samples.py"

#: sts-cohort patients bundled, and the margin kept around the GTV's bounding box.
STS_PATIENTS = ("STS_002", "STS_008")
MARGIN_MM = 20.0
MARGIN_SLICES = 3
#: breast-dce: in-plane crop (rows, columns) around the enhancing tumour.
DCE_CROP = (slice(64, 192), slice(32, 160))
US_FRAMES = 16
KNEE_FRAMES = 10


def new_uid(old: str) -> str:
    """A deterministic new UID for a derived object (same input, same UID)."""
    return str(generate_uid(entropy_srcs=["medlab bundled sample", str(old)]))


# ---------------------------------------------------------------------------
# DICOM helpers


def _derive(ds: Dataset, uid_map: dict[str, str], description: str) -> None:
    """Mark ``ds`` as derived and give it new series and instance UIDs."""
    for keyword in ("SeriesInstanceUID", "SOPInstanceUID"):
        old = str(getattr(ds, keyword))
        uid_map.setdefault(old, new_uid(old))
        setattr(ds, keyword, uid_map[old])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if "ImageType" in ds:
        image_type = list(ds.ImageType)
        image_type[0] = "DERIVED"
        ds.ImageType = image_type
    previous = str(ds.get("DerivationDescription", "")).strip()
    ds.DerivationDescription = (f"{previous}; " if previous else "") + description


def _write(ds: Dataset, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def crop_series(
    src: Path, dest: Path, box: tuple[slice, slice, slice], uid_map: dict[str, str]
) -> list[tuple[float, str, str]]:
    """Crop a one-file-per-slice series to ``box`` (medlab's (slice, row, column) axes).

    Returns ``(height along the slice normal, SOP Class UID, new SOP Instance UID)``
    of every kept slice.
    """
    image = ml.load(src)
    ks, rs, cs = box
    r0, c0 = rs.start, cs.start
    kept = []
    for f in sorted(src.iterdir()):
        ds = pydicom.dcmread(f)
        ipp = np.asarray(ds.ImagePositionPatient, float)
        k = int(np.rint(np.linalg.solve(image.affine[:3, :3], ipp - image.affine[:3, 3])[0]))
        if not ks.start <= k < ks.stop:
            continue
        if ds.file_meta.TransferSyntaxUID.is_compressed:
            raise ValueError(f"{f}: expected uncompressed pixel data")
        pixels = ds.pixel_array[rs, cs]
        iop = np.asarray(ds.ImageOrientationPatient, float)
        row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
        # DICOM: pixel (row r, column c) lies at IPP + c*dcol*X + r*drow*Y, X = IOP[:3], Y = IOP[3:]
        ds.ImagePositionPatient = [
            float(f"{v:.6f}") for v in ipp + c0 * col_spacing * iop[:3] + r0 * row_spacing * iop[3:]
        ]
        ds.Rows, ds.Columns = pixels.shape
        ds.PixelData = np.ascontiguousarray(pixels).tobytes()
        for keyword in ("SmallestImagePixelValue", "LargestImagePixelValue",
                        "SmallestPixelValueInSeries", "LargestPixelValueInSeries"):
            if keyword in ds:
                delattr(ds, keyword)
        _derive(ds, uid_map, f"cropped by medlab {SCRIPT}: rows {rs.start}:{rs.stop}, "
                             f"columns {cs.start}:{cs.stop} of the original slice")
        _write(ds, dest / f.name)
        normal = np.cross(iop[:3], iop[3:])
        kept.append((float(ipp @ normal), str(ds.SOPClassUID), str(ds.SOPInstanceUID)))
    return sorted(kept)


def _replace_uids(ds: Dataset, uid_map: dict[str, str]) -> None:
    for elem in ds.iterall():
        if elem.VR == "UI" and elem.value is not None:
            if isinstance(elem.value, str | pydicom.uid.UID) and str(elem.value) in uid_map:
                elem.value = uid_map[str(elem.value)]


def _image_ref(sop_class: str, sop_uid: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop_uid
    return item


def rewrite_rtstruct(
    src: Path, dest: Path, uid_map: dict[str, str], kept: list[tuple[float, str, str]],
    normal: np.ndarray, spacing_mm: float,
) -> None:
    """Point a structure set at the cropped images.

    The series-level list names exactly the kept slices; each planar contour
    references the kept slice it lies on, found by its position (the upstream
    structure sets reference the images of an earlier export by UIDs these
    files no longer carry, so matching by position is the only sound way).
    """
    ds = pydicom.dcmread(src)
    heights = np.array([h for h, _, _ in kept])
    for frame in ds.get("ReferencedFrameOfReferenceSequence", []):
        for study in frame.get("RTReferencedStudySequence", []):
            for series in study.get("RTReferencedSeriesSequence", []):
                series.ContourImageSequence = [_image_ref(c, u) for _, c, u in kept]
    for roi in ds.get("ROIContourSequence", []):
        for contour in roi.get("ContourSequence", []):
            points = np.asarray(contour.ContourData, float).reshape(-1, 3)
            height = float(np.mean(points @ normal))
            i = int(np.argmin(np.abs(heights - height)))
            if abs(heights[i] - height) > spacing_mm / 2:
                raise ValueError(f"{src}: a contour at {height:.2f} mm lies outside the crop")
            contour.ContourImageSequence = [_image_ref(kept[i][1], kept[i][2])]
    _replace_uids(ds, uid_map)
    _derive(ds, uid_map, f"references rewritten by medlab {SCRIPT} for the cropped images")
    _write(ds, dest)


def first_frames(src: Path, dest: Path, n: int, uid_map: dict[str, str]) -> None:
    """Keep the first ``n`` frames of a multi-frame object (no re-encoding)."""
    ds = pydicom.dcmread(src)
    total = int(ds.NumberOfFrames)
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        frames = list(generate_frames(ds.PixelData, number_of_frames=total))[:n]
        ds.PixelData = encapsulate(frames)
        ds["PixelData"].is_undefined_length = True
    else:
        frame_bytes = len(ds.PixelData) // total
        ds.PixelData = ds.PixelData[: n * frame_bytes]
    ds.NumberOfFrames = n
    if "PerFrameFunctionalGroupsSequence" in ds:
        ds.PerFrameFunctionalGroupsSequence = list(ds.PerFrameFunctionalGroupsSequence)[:n]
    _derive(ds, uid_map, f"first {n} of {total} frames kept by medlab {SCRIPT}")
    _write(ds, dest)


# ---------------------------------------------------------------------------
# the samples


def _source_note(name: str, origin: str, what: str, paths: Iterable[str]) -> str:
    ds = ml.data.datasets().set_index("name").loc[origin]
    return (
        f"Origin: medlab dataset '{origin}' ({ds.origin}), files {', '.join(paths)}\n"
        f"License: {ds.licence}\n"
        f"What: {what}\n"
        f"Made by: {SCRIPT} (deterministic; run it again to re-create this folder).\n"
    )


def _box(image: ml.Image, mask: ml.Image) -> tuple[slice, slice, slice]:
    idx = np.argwhere(np.asarray(mask.array, bool))
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    margin = np.array([MARGIN_SLICES, *np.ceil(MARGIN_MM / np.asarray(image.spacing[1:])).astype(int)])
    lo = np.maximum(lo - margin, 0)
    hi = np.minimum(hi + margin, image.spatial_shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def make_sts(out: Path) -> dict[str, dict[str, tuple[slice, slice, slice]]]:
    """CT, T1 MR and PET of two patients, cropped around the GTV, with their RTSTRUCTs."""
    boxes: dict[str, dict[str, tuple[slice, slice, slice]]] = {}
    for patient in STS_PATIENTS:
        root = ml.data.path("sts-cohort", f"dicom/{patient}")
        uid_map: dict[str, str] = {}
        boxes[patient] = {}
        for modality in ("CT", "MR_T1", "PET"):
            image = ml.load(root / modality / "image")
            rs = next((root / modality / "mask").iterdir())
            mask = next(iter(ml.segmentation.rtstruct_to_masks(rs, image).values()))
            box = _box(image, mask)
            if modality == "PET":  # coarse already: keep the whole plane, crop slices only
                box = (box[0], slice(0, image.spatial_shape[1]), slice(0, image.spatial_shape[2]))
            boxes[patient][modality] = box
            dest = out / "dicom" / patient / modality
            kept = crop_series(root / modality / "image", dest / "image", box, uid_map)
            iop = pydicom.dcmread(next((dest / "image").iterdir()), stop_before_pixels=True)
            iop = np.asarray(iop.ImageOrientationPatient, float)
            rewrite_rtstruct(rs, dest / "mask" / rs.name, uid_map, kept,
                             normal=np.cross(iop[:3], iop[3:]), spacing_mm=image.spacing[0])
    box_text = "; ".join(
        f"{p} {m} slices {b[0].start}:{b[0].stop}, rows {b[1].start}:{b[1].stop}, "
        f"columns {b[2].start}:{b[2].stop}"
        for p, mods in boxes.items() for m, b in mods.items()
    )
    (out / "SOURCE.txt").write_text(_source_note(
        out.name, "sts-cohort",
        f"patients {', '.join(STS_PATIENTS)}: CT, MR_T1 and PET slice series cropped to the GTV's "
        f"bounding box plus {MARGIN_MM:g} mm in-plane and {MARGIN_SLICES} slices (PET: slices "
        f"only), in medlab's (slice, row, column) index order: {box_text}. Pixel values unchanged; "
        "ImagePositionPatient moved by the crop offset; new Series/SOP Instance UIDs; the "
        "RTSTRUCTs reference the kept slices by their new UIDs (each contour the slice it lies on, "
        "matched by position: upstream they referenced an earlier export's UIDs).",
        [f"dicom/{p}/" for p in STS_PATIENTS]))
    return boxes


def make_breast_dce(out: Path) -> None:
    src = ml.data.path("breast-dce", "dce_3dfgre_3phases")
    box = (slice(0, 10**6), *DCE_CROP)
    crop_series(src, out / "dce_3dfgre_3phases", box, {})
    rows, cols = DCE_CROP
    (out / "SOURCE.txt").write_text(_source_note(
        out.name, "breast-dce",
        f"all 36 files (12 sagittal slices x 3 phases), each cropped to rows {rows.start}:"
        f"{rows.stop} and columns {cols.start}:{cols.stop} (the enhancing tumour and the breast "
        "around it). Pixel values unchanged; ImagePositionPatient moved; new UIDs.",
        ["dce_3dfgre_3phases/"]))


def make_us_cine(out: Path) -> None:
    first_frames(ml.data.path("us-cine", "color3d_jpeg_baseline.dcm"),
                 out / "color3d_jpeg_baseline.dcm", US_FRAMES, {})
    (out / "SOURCE.txt").write_text(_source_note(
        out.name, "us-cine",
        f"the first {US_FRAMES} of 120 frames of the SonoSite RGB cine (JPEG Baseline fragments "
        "copied unchanged; NumberOfFrames updated; ultrasound region calibration kept).",
        ["color3d_jpeg_baseline.dcm"]))


def make_knee(out: Path) -> None:
    first_frames(ml.data.path("xa-mr-cine", "MOVEKNEE.dcm"), out / "MOVEKNEE.dcm", KNEE_FRAMES, {})
    (out / "SOURCE.txt").write_text(_source_note(
        out.name, "xa-mr-cine",
        f"the first {KNEE_FRAMES} of 19 time points of the enhanced MR 'moving knee' (pixel data "
        "and per-frame functional groups cut to match).", ["MOVEKNEE.dcm"]))


def copy_files(out: Path, origin: str, paths: list[str], what: str) -> None:
    for rel in paths:
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        src = ml.data.path(origin, rel)
        if src.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
            for f in sorted(src.iterdir()):
                shutil.copyfile(f, dest / f.name)
        else:
            shutil.copyfile(src, dest)
    (out / "SOURCE.txt").write_text(_source_note(out.name, origin, what, paths))


SAMPLES = {
    "sts-cohort-sample": make_sts,
    "breast-dce-sample": make_breast_dce,
    "us-cine-sample": make_us_cine,
    "xa-mr-cine-sample": make_knee,
    "wg04-modalities-sample": lambda out: copy_files(
        out, "wg04-modalities", ["RG3_J2KR.dcm"],
        "one file, unchanged: a Fuji computed radiograph, MONOCHROME1, JPEG 2000 lossless."),
    "fo-dicom-sample": lambda out: copy_files(
        out, "fo-dicom", ["OutOfBoundsOverlay.dcm"],
        "one file, unchanged: a mammogram (MG) with ImagerPixelSpacing and "
        "EstimatedRadiographicMagnificationFactor (fo-dicom's test data, Microsoft Public "
        "License)."),
    "ct2d-head-sample": lambda out: copy_files(
        out, "ct2d-head", ["CT_2D_head_fixed.mha", "CT_2D_head_moving.mha",
                           "CT_2D_head_fixed_mask.mha", "CT_2D_head_moving_mask.mha"],
        "the 2D head CT registration pair and its masks, unchanged."),
    "dcm-qa-orientation-sample": lambda out: copy_files(
        out, "dcm-qa-orientation", ["In/sag/sagasc35"],
        "one series, unchanged: a sagittal EPI stored as two Siemens mosaics (two volumes)."),
}


def main(argv: list[str] | None = None) -> int:
    # some source headers have over-long SH values; they are kept as they are
    warnings.filterwarnings("ignore", message="The value length .* exceeds the maximum length")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"samples to make (default: all of {list(SAMPLES)})")
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: data/)")
    args = parser.parse_args(argv)
    for name in args.names or SAMPLES:
        out = args.out / name
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        SAMPLES[name](out)
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        sys.stderr.write(f"{name}: {size / 1e6:.2f} MB\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
