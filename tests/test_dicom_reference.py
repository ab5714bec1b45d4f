"""DICOM geometry and voxels checked against independent readers.

Every DICOM series of ``dcm-qa-nih``, ``dcm-qa-orientation``, ``dcm-qa-table``,
``dcm-qa-ts``, ``dcm-qa-enhanced``, ``dcm-qa-12bit`` and ``sts-cohort`` is
loaded with medlab and compared, voxel for voxel and affine for affine, with
what another reader gives once its conventions are converted:

* SimpleITK (GDCM) ``ImageSeriesReader`` for classic one-file-per-slice
  series (one volume at a time for GE 4D series), converted with
  :meth:`medlab.Image.from_simpleitk`;
* Debian's ``dcm2niix`` for everything SimpleITK cannot read as a volume
  (Siemens mosaics, enhanced multi-frame, GE 4D), loaded with nibabel and
  converted with :meth:`medlab.Image.from_nibabel`;
* pydicom (and GDCM) directly for per-frame rescale and BitsStored /
  PixelRepresentation handling.

The readers disagree on array layout (dcm2niix flips the row axis, GDCM may
sort slices the other way), so :func:`assert_same_image` maps one index grid
onto the other exactly (a signed permutation of the axes, derived from the
two affines) and then compares the arrays exactly (integers) or to float
precision (floats).

Where a reference deliberately differs from the DICOM standard the test
states precisely how, and asserts that narrower relation instead.
"""

from __future__ import annotations

import glob
import math
import os
import shutil
import subprocess
import warnings
from collections import defaultdict
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

import medlab as ml
import medlab.io

DCM2NIIX = shutil.which("dcm2niix") or "/usr/bin/dcm2niix"

# dcm2niix writes its affine as float32 (and rounds on the way): 0.01 mm.
DCM2NIIX_ATOL_MM = 0.01
SITK_ATOL_MM = 1e-3


# --------------------------------------------------------------------------- data
def dataset_path(name: str) -> Path:
    """Folder of a shared dataset (through :mod:`medlab.data` when it is there)."""
    try:
        from medlab.data import fetch
    except ImportError:  # pragma: no cover - medlab.data not available
        return Path(os.environ["MEDLAB_DATA"].split(os.pathsep)[0]) / name
    return Path(fetch(name, progress=False))


def _quiet_load(path: Path, **kwargs) -> ml.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nibabel's "experimental DICOM readers" note
        return ml.load(path, **kwargs)


def _quiet_load_all(path: Path, **kwargs) -> dict[str, ml.Image]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return medlab.io.load_all(path, progress=False, **kwargs)


def _select(images: dict[str, ml.Image], part: str) -> ml.Image:
    hits = [k for k in images if part in k]
    assert len(hits) == 1, f"expected one image id containing {part!r}, got {list(images)}"
    return images[hits[0]]


# ------------------------------------------------------------------ the comparison
def assert_same_image(
    ours: ml.Image,
    reference: ml.Image,
    *,
    atol_mm: float,
    rtol: float = 1e-6,
) -> dict[str, float]:
    """Assert two images hold the same voxels at the same world positions.

    The two may order, or flip, their spatial axes differently: the integer
    map from ``reference``'s index grid onto ours is derived from the two
    affines and must be a signed permutation (axis-aligned relation, e.g.
    dcm2niix's row flip, reversed slice order). The arrays are then compared
    exactly where both are integer, else to ``rtol`` of the data range. Any
    trailing (time, channel) axes must match one to one.

    Returns
    -------
    dict
        ``max_abs_diff`` (voxels) and ``affine_diff_mm`` (largest deviation
        of an affine element or grid corner, mm).
    """
    a, b = ours.affine, reference.affine
    m = np.linalg.inv(a) @ b  # reference index -> our index
    p = np.round(m[:3, :3])
    signed_perm = bool(
        np.all(np.abs(p).sum(axis=0) == 1) and np.all(np.abs(p).sum(axis=1) == 1)
        and np.all(np.isin(p, (-1.0, 0.0, 1.0)))
    )
    assert signed_perm, (
        "the two grids are not related by an axis permutation/flip: reference index -> "
        f"our index is\n{np.round(m, 4)}\nours:\n{np.round(a, 4)}\nreference:\n{np.round(b, 4)}"
    )
    t = np.round(m[:3, 3])
    perm = [int(np.flatnonzero(p[i])[0]) for i in range(3)]  # our axis i <- reference axis
    signs = [p[i, perm[i]] for i in range(3)]
    ref_shape = reference.spatial_shape
    for i in range(3):
        n = ref_shape[perm[i]]
        expected_t = 0.0 if signs[i] > 0 else n - 1.0
        assert t[i] == expected_t, (
            f"grids are offset along our axis {i}: reference index maps with shift {t[i]:g}, "
            f"expected {expected_t:g} (sizes ours {ours.spatial_shape}, reference {ref_shape})"
        )
    # the reference affine, re-expressed on our index grid
    inv_p = p.T
    mapped = np.eye(4)
    mapped[:3, :3] = b[:3, :3] @ inv_p
    mapped[:3, 3] = b[:3, 3] - b[:3, :3] @ inv_p @ t
    corners = np.array(
        [[k, j, i, 1.0] for k in (0, ours.spatial_shape[0] - 1)
         for j in (0, ours.spatial_shape[1] - 1) for i in (0, ours.spatial_shape[2] - 1)]
    )
    affine_diff = max(
        float(np.abs(mapped[:3] - a[:3]).max()),
        float(np.abs(corners @ (mapped - a).T).max()),
    )
    assert affine_diff <= atol_mm, (
        f"affines differ by {affine_diff:.4g} mm (tolerance {atol_mm} mm)\n"
        f"ours:\n{np.round(a, 5)}\nreference on our grid:\n{np.round(mapped, 5)}"
    )

    ref = np.asarray(reference.array)
    ref = ref.transpose(*perm, *range(3, ref.ndim))
    flips = tuple(i for i in range(3) if signs[i] < 0)
    if flips:
        ref = np.flip(ref, axis=flips)
    assert ours.shape == ref.shape, f"shapes differ: ours {ours.shape}, reference {ref.shape}"
    mine = np.asarray(ours.array)
    if ref.dtype.kind in "iub":
        assert mine.dtype.kind in "iub", (
            f"the reference reads integers ({ref.dtype}) but medlab gives {mine.dtype}"
        )
    if mine.dtype.kind in "iub" and ref.dtype.kind in "iub":
        diff = np.abs(mine.astype(np.int64) - ref.astype(np.int64))
        max_diff = float(diff.max())
        assert max_diff == 0, (
            f"{int((diff > 0).sum())} voxels differ (max {max_diff:g}); first at "
            f"{np.argwhere(diff > 0)[0].tolist()}"
        )
    else:
        m64, r64 = mine.astype(np.float64), ref.astype(np.float64)
        max_diff = float(np.abs(m64 - r64).max())
        scale = float(np.abs(r64).max()) or 1.0
        np.testing.assert_allclose(m64, r64, rtol=rtol, atol=rtol * scale)
    return {"max_abs_diff": max_diff, "affine_diff_mm": affine_diff}


def assert_sorted_along_normal(image: ml.Image) -> None:
    """Slices go the way of the frame normal (row direction x column direction)."""
    a = image.affine
    normal = np.cross(a[:3, 2], a[:3, 1])  # (column step) x (row step) = IOP row x col
    if image.spatial_shape[0] > 1:
        assert a[:3, 0] @ normal > 0, f"slices are stacked against the normal:\n{a}"


# ======================================================== 1. SimpleITK, classic series
STS_PATIENTS = ("STS_002", "STS_008", "STS_019", "STS_025", "STS_042")
SITK_CASES = [
    *(pytest.param("sts-cohort", f"dicom/{pt}/{mod}/image", id=f"sts-{pt}-{mod}")
      for pt in STS_PATIENTS for mod in ("CT", "MR_T1", "PET")),
    pytest.param("dcm-qa-table", "In/GE/Exam1486_Laser794mm/02_Ax_fMRI_FF_I11.1_S15.9",
                 id="table-1486-02-FFS-4D"),
    pytest.param("dcm-qa-table", "In/GE/Exam1486_Laser794mm/06_Ax_fMRI_HF_I11.1_S15.9",
                 id="table-1486-06-HFS-4D"),
    pytest.param("dcm-qa-table", "In/GE/Exam1487_Laser711mm/02_Ax_fMRI_FF_I11.1_S15.9",
                 id="table-1487-02-FFS-4D"),
    pytest.param("dcm-qa-nih", "In/20180918GE/mr_0004", id="nih-GE-mr_0004-4D"),
    pytest.param("dcm-qa-nih", "In/20180918GE/mr_0007", id="nih-GE-mr_0007-4D"),
]


def sitk_volumes(folder: Path) -> list[ml.Image]:
    """The series in ``folder`` read by SimpleITK, one Image per time point.

    GDCM lists and sorts the files; for one-file-per-slice 4D series the
    files at each position are put in time order by InstanceNumber, and
    SimpleITK reads the t-th file of every position as volume t.
    """
    reader = sitk.ImageSeriesReader()
    uids = reader.GetGDCMSeriesIDs(str(folder))
    assert len(uids) == 1, f"{folder}: expected one series, GDCM finds {uids}"
    files = list(reader.GetGDCMSeriesFileNames(str(folder), uids[0]))
    at_position: dict[tuple, list[tuple[int, str]]] = defaultdict(list)
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        pos = tuple(np.round(np.asarray(ds.ImagePositionPatient, dtype=float), 2))
        at_position[pos].append((int(ds.InstanceNumber), f))
    volume_of = {}
    for entries in at_position.values():
        for t, (_, f) in enumerate(sorted(entries)):
            volume_of[f] = t
    counts = {len(v) for v in at_position.values()}
    assert len(counts) == 1, f"{folder}: positions hold different numbers of files: {counts}"
    n_t = counts.pop()
    out = []
    for t in range(n_t):
        reader.SetFileNames([f for f in files if volume_of[f] == t])  # GDCM's order
        out.append(ml.Image.from_simpleitk(reader.Execute()))
    return out


@pytest.mark.parametrize(("dataset", "sub"), SITK_CASES)
def test_classic_series_matches_simpleitk(dataset: str, sub: str) -> None:
    folder = dataset_path(dataset) / sub
    ours = _quiet_load(folder)
    assert_sorted_along_normal(ours)
    refs = sitk_volumes(folder)
    assert ours.n_frames == len(refs)
    for t, ref in enumerate(refs):
        mine = ours.frame(t) if ours.frame_times_s is not None else ours
        assert_same_image(mine, ref, atol_mm=SITK_ATOL_MM)


# ============================================================ 2. dcm2niix references
@pytest.fixture(scope="session")
def dcm2niix_dir(tmp_path_factory):
    """``dcm2niix_dir(dataset)``: folder of dcm2niix's NIfTIs of ``<dataset>/In``.

    One conversion per dataset and test session, always into a temporary
    folder. ``-p n``: the standard Rescale Slope/Intercept for Philips data,
    as medlab's ``scaling='display'`` (the comparisons here are about
    geometry and pixels; both tools' default, Philips' floating-point values
    through the private scale slope (2005,100E), is compared in
    tests/test_dicom_scaling.py).
    """
    if not Path(DCM2NIIX).is_file():
        # like every test that needs a system tool: a skip with the reason on a developer's
        # machine, a failure in CI (MEDLAB_NO_SKIP=1, see conftest.py)
        pytest.skip(f"dcm2niix is needed as the reference reader but {DCM2NIIX} is missing "
                    "(Debian: apt-get install dcm2niix)")
    done: dict[str, Path] = {}

    def convert(dataset: str) -> Path:
        if dataset not in done:
            out = tmp_path_factory.mktemp(f"dcm2niix-{dataset}")
            proc = subprocess.run(
                [DCM2NIIX, "-b", "n", "-z", "n", "-p", "n", "-f", "%s_%t", "-o", str(out),
                 str(dataset_path(dataset) / "In")],
                capture_output=True, text=True, timeout=120,
            )
            assert proc.returncode == 0, proc.stdout + proc.stderr
            done[dataset] = out
        return done[dataset]

    return convert


def _dcm2niix_image(dcm2niix_dir, dataset: str, stem: str) -> ml.Image:
    path = dcm2niix_dir(dataset) / f"{stem}.nii"
    made = sorted(p.name for p in dcm2niix_dir(dataset).glob("*.nii"))
    assert path.is_file(), f"dcm2niix did not write {path.name}; it wrote {made}"
    return ml.Image.from_nibabel(nib.load(path))


# (dataset, path inside the dataset, part of the medlab id when the path holds
# several images, dcm2niix output name "<SeriesNumber>_<time>")
D2N_CASES = [
    pytest.param("dcm-qa-nih", "In/20180918GE/mr_0004", None, "4_20180918114023",
                 id="nih-GE-mr_0004-interleaved-4D"),
    pytest.param("dcm-qa-nih", "In/20180918GE/mr_0007", None, "7_20180918114023",
                 id="nih-GE-mr_0007-sequential-S-to-I-4D"),
    pytest.param("dcm-qa-nih", "In/20180918Si/mr_0003", None, "3_20180918121230",
                 id="nih-Si-mr_0003-mosaic-PE-AP"),
    pytest.param("dcm-qa-nih", "In/20180918Si/mr_0004", None, "4_20180918121230",
                 id="nih-Si-mr_0004-mosaic-PE-PA"),
    pytest.param("dcm-qa-nih", "In/20180918Si/mr_0005", None, "5_20180918121230",
                 id="nih-Si-mr_0005-mosaic-PE-RL"),
    pytest.param("dcm-qa-nih", "In/20180918Si/mr_0006", None, "6_20180918121230",
                 id="nih-Si-mr_0006-mosaic-PE-LR"),
    pytest.param("dcm-qa-table", "In/GE/Exam1486_Laser794mm/02_Ax_fMRI_FF_I11.1_S15.9", None,
                 "2_20240801122235", id="table-1486-02-FFS-4D"),
    pytest.param("dcm-qa-table", "In/GE/Exam1486_Laser794mm/06_Ax_fMRI_HF_I11.1_S15.9", None,
                 "6_20240801122235", id="table-1486-06-HFS-4D"),
    pytest.param("dcm-qa-table", "In/GE/Exam1487_Laser711mm/02_Ax_fMRI_FF_I11.1_S15.9", None,
                 "2_20240801123838", id="table-1487-02-FFS-4D"),
    pytest.param("dcm-qa-orientation", "In/ax/axasc35", None, "6_20140310133834",
                 id="orientation-ax-asc35"),
    pytest.param("dcm-qa-orientation", "In/ax/axdesc36", None, "10_20140310133834",
                 id="orientation-ax-desc36"),
    pytest.param("dcm-qa-orientation", "In/cor/corasc35", None, "16_20140310133834",
                 id="orientation-cor-asc35"),
    pytest.param("dcm-qa-orientation", "In/sag/sagasc35", None, "22_20140310133834",
                 id="orientation-sag-asc35"),
    pytest.param("dcm-qa-orientation", "In/sag/sagint36", None, "21_20140310133834",
                 id="orientation-sag-int36"),
    pytest.param("dcm-qa-orientation", "In/axmb/AxAsc36mb2a", None, "25_20140310133834",
                 id="orientation-axmb-asc36-jpeg-lossless"),
    pytest.param("dcm-qa-orientation", "In/axmb/AxInt36mb", None, "26_20140310133834",
                 id="orientation-axmb-int36-j2k"),
    # dcm-qa-ts: the same mosaic in 9 transfer syntaxes, one Series Number each.
    # Debian's dcm2niix has no JPEG-LS decoder (7, 8): see test_transfer_syntaxes_agree.
    *(pytest.param("dcm-qa-ts", f"In/{n}.dcm", None, f"{n}_20140310133834", id=f"ts-{n}-{ts}")
      for n, ts in ((1, "explicit-LE"), (2, "implicit-LE"), (3, "explicit-BE"), (4, "RLE"),
                    (5, "jpeg-lossless-dcmtk"), (6, "jpeg-lossless-gdcm"), (9, "j2k"))),
    pytest.param("dcm-qa-enhanced", "In/Philips/IM_0027_fMAP.dcm", "_M-",
                 "801_20180526150245_e1", id="enhanced-philips-magnitude"),
    pytest.param("dcm-qa-enhanced", "In/Philips/IM_0027_fMAP.dcm", "FIELD_MAP",
                 "801_20180526150245_e2_fieldmaphz", id="enhanced-philips-fieldmap"),
    pytest.param("dcm-qa-enhanced", "In/Siemens/XA10", None, "6_20181022082758",
                 id="enhanced-siemens-XA10-4D"),
    pytest.param("dcm-qa-12bit", "In/12bitUnsigned.dcm", None, "2_20070203105620",
                 id="12bit-unsigned"),
    pytest.param("dcm-qa-12bit", "In/12bitUnsigned_0x0F0F.dcm", None, "3_20070203105620",
                 id="12bit-unsigned-0x0F0F"),
    # 12bitSigned_0x0F0F.dcm (dcm2niix "4_..."): test_12bit_signed_vs_dcm2niix
]


@pytest.mark.parametrize(("dataset", "sub", "part", "stem"), D2N_CASES)
def test_series_matches_dcm2niix(dcm2niix_dir, dataset, sub, part, stem) -> None:
    path = dataset_path(dataset) / sub
    ours = (_quiet_load(path, scaling="display") if part is None
            else _select(_quiet_load_all(path, scaling="display"), part))
    assert_sorted_along_normal(ours)
    ref = _dcm2niix_image(dcm2niix_dir, dataset, stem)
    assert_same_image(ours, ref, atol_mm=DCM2NIIX_ATOL_MM)


def test_siemens_mosaic_slice_spacing_is_the_protocols() -> None:
    """dcm-qa-nih Siemens mosaics: 3 mm slices with a 300 % gap -> 12 mm apart.

    dcm2niix agrees (test above); the protocol (CSA series header) says so too:
    slice centres at 16, 28, 40, 52, 64 mm (``sSliceArray.asSlice[i].sPosition.dTra``).
    """
    img = _quiet_load(dataset_path("dcm-qa-nih") / "In/20180918Si/mr_0003")
    assert img.spacing == pytest.approx((12.0, 3.0, 3.0))
    z = img.index_to_world([[k, 0, 0] for k in range(img.spatial_shape[0])])[:, 2]
    np.testing.assert_allclose(z, [16, 28, 40, 52, 64], atol=1e-3)


TS_FILES = [pytest.param(n, id=f"ts-{n}") for n in range(2, 10)]


@pytest.mark.parametrize("n", TS_FILES)
def test_transfer_syntaxes_agree(n: int) -> None:
    """Each of the 9 encodings of dcm-qa-ts gives exactly what file 1 gives
    (file 1 itself matches dcm2niix above; 7 and 8 are JPEG-LS, which Debian's
    dcm2niix cannot decode, so this is their only reference)."""
    folder = dataset_path("dcm-qa-ts") / "In"
    first = _quiet_load(folder / "1.dcm")
    other = _quiet_load(folder / f"{n}.dcm")
    assert other.dtype == first.dtype
    np.testing.assert_array_equal(other.affine, first.affine)
    np.testing.assert_array_equal(other.array, first.array)


@pytest.mark.parametrize(
    ("dataset", "n_images"), [("dcm-qa-ts", 9), ("dcm-qa-12bit", 3)], ids=["ts", "12bit"]
)
def test_files_sharing_a_series_uid_but_not_a_series_number_stay_apart(dataset, n_images):
    """These files are re-encodings of one image: one SeriesInstanceUID, but each
    its own Series Number (and encoding). They are separate images (as dcm2niix
    makes them), not the time points of one 4D image; each equals its file alone."""
    folder = dataset_path(dataset) / "In"
    images = _quiet_load_all(folder)
    assert len(images) == n_images, list(images)
    for img in images.values():
        assert img.frame_times_s is None
        (path,) = img.meta["files"]
        alone = _quiet_load(Path(path))
        assert img.dtype == alone.dtype
        np.testing.assert_array_equal(img.array, alone.array)


# ----------------------------------------------------------- dcm-qa-table: FFS vs HFS
def test_feet_first_equals_head_first_rotated_about_ap() -> None:
    """The phantom did not move; only the declared patient position changed.

    In patient (LPS) coordinates the HFS volume is therefore the FFS volume
    rotated 180 degrees about the A-P axis: (x, y, z) -> (-x, y, -z). Both
    series have the same prescription (hence the same affine), so the raw
    arrays disagree; after applying that rotation to the FFS image's affine
    and resampling it onto the HFS grid they agree (where both have data).
    """
    base = dataset_path("dcm-qa-table") / "In/GE/Exam1486_Laser794mm"
    ffs = _quiet_load(base / "02_Ax_fMRI_FF_I11.1_S15.9")
    hfs = _quiet_load(base / "06_Ax_fMRI_HF_I11.1_S15.9")
    assert (ffs.meta["patient_position"], hfs.meta["patient_position"]) == ("FFS", "HFS")
    np.testing.assert_allclose(ffs.affine, hfs.affine, atol=1e-3)

    def corr(x, y) -> float:
        return float(np.corrcoef(np.ravel(x), np.ravel(y))[0, 1])

    rotate_about_ap = np.diag([-1.0, 1.0, -1.0, 1.0])
    for t in range(ffs.n_frames):
        f, h = ffs.frame(t), hfs.frame(t)
        raw = corr(f.array, h.array)
        moved = ml.Image(f.array, rotate_about_ap @ f.affine).resample_to(
            h, interpolation="linear", default_value=np.nan
        )
        inside = np.isfinite(moved.array)
        assert inside.mean() > 0.5  # the slabs overlap (same prescription, 27 mm vs 22 mm)
        rotated = corr(moved.array[inside], np.asarray(h.array)[inside])
        assert raw < 0.5, raw
        assert rotated > 0.8, (raw, rotated)


# ================================================== 3. enhanced multi-frame, per frame
ENHANCED_FILES = [
    pytest.param("In/Philips/IM_0027_fMAP.dcm", id="philips-IM_0027_fMAP"),
    *(pytest.param(f"In/Siemens/XA10/6_{i}.dcm", id=f"siemens-XA10-6_{i}") for i in range(1, 5)),
]


@pytest.mark.parametrize("sub", ENHANCED_FILES)
def test_enhanced_per_frame_rescale_matches_pydicom(sub: str) -> None:
    """Every frame lands, rescaled with its own Rescale Slope/Intercept
    (Pixel Value Transformation functional group), at the slice that its
    Image Position (Patient) gives in exactly one of the loaded images."""
    path = dataset_path("dcm-qa-enhanced") / sub
    images = _quiet_load_all(path, scaling="display")  # Philips' float values: test_dicom_scaling
    ds = pydicom.dcmread(path)
    raw = ds.pixel_array
    shared = ds.SharedFunctionalGroupsSequence[0]
    used: set[tuple[str, int]] = set()
    for i, per in enumerate(ds.PerFrameFunctionalGroupsSequence):
        def item(seq: str, per=per):
            return (per.get(seq) or shared.get(seq))[0]

        pvt = item("PixelValueTransformationSequence")
        expected = raw[i].astype(np.float64) * float(pvt.RescaleSlope) + float(
            pvt.RescaleIntercept
        )
        ipp = np.asarray(item("PlanePositionSequence").ImagePositionPatient, dtype=float)
        hits = []
        for key, img in images.items():
            idx = np.linalg.solve(img.affine[:3, :3], ipp - img.affine[:3, 3])
            k = round(float(idx[0]))
            assert np.allclose(idx, [k, 0, 0], atol=1e-3), (key, idx)
            got = np.asarray(img.array[k], dtype=np.float64)
            if np.allclose(got, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max()):
                hits.append((key, k))
        assert len(hits) == 1, f"frame {i}: found at {hits}"
        used.add(hits[0])
    assert len(used) == sum(img.spatial_shape[0] for img in images.values()) == len(raw)


# ========================================= 4. BitsStored / PixelRepresentation (12 bit)
TWELVE_BIT = [
    pytest.param("12bitUnsigned.dcm", False, id="unsigned"),
    pytest.param("12bitUnsigned_0x0F0F.dcm", False, id="unsigned-0x0F0F"),
    pytest.param("12bitSigned_0x0F0F.dcm", True, id="signed-0x0F0F"),
]


def _tiles(mosaic: np.ndarray, n: int, rows: int, cols: int) -> np.ndarray:
    side = math.ceil(math.sqrt(n))
    return np.stack(
        [mosaic[r * rows:(r + 1) * rows, c * cols:(c + 1) * cols]
         for r, c in (divmod(k, side) for k in range(n))]
    )


@pytest.mark.parametrize(("name", "signed"), TWELVE_BIT)
def test_12bit_matches_pydicom_and_gdcm(name: str, signed: bool) -> None:
    """12 bits stored in 16 (some files with garbage in the 4 unused high bits):
    the stored value is the low 12 bits, sign-extended from bit 11 (HighBit)
    when PixelRepresentation is 1. pydicom and GDCM (SimpleITK) both read it
    so; medlab must give the same, tile for tile, in a signed/unsigned dtype."""
    path = dataset_path("dcm-qa-12bit") / "In" / name
    ours = _quiet_load(path)
    assert ours.dtype.kind == ("i" if signed else "u")
    lo, hi = (-2048, 2047) if signed else (0, 4095)
    assert lo <= ours.array.min() and ours.array.max() <= hi
    n, rows, cols = ours.spatial_shape
    ds = pydicom.dcmread(path)
    assert (int(ds.BitsAllocated), int(ds.BitsStored), int(ds.PixelRepresentation)) == (
        16, 12, int(signed))
    raw16 = np.frombuffer(ds.PixelData, dtype="<u2")
    assert raw16.max() > 4095  # the unused high bits do hold garbage / sign bits
    from_pydicom = _tiles(ds.pixel_array, n, rows, cols)
    from_gdcm = _tiles(sitk.GetArrayFromImage(sitk.ReadImage(str(path)))[0], n, rows, cols)
    np.testing.assert_array_equal(ours.array, from_pydicom)
    np.testing.assert_array_equal(ours.array, from_gdcm)


def test_12bit_signed_vs_dcm2niix(dcm2niix_dir) -> None:
    """dcm2niix (v1.0.20220720) does not sign-extend 12-bit signed data.

    For 12bitSigned_0x0F0F.dcm (PixelRepresentation 1, BitsStored 12, HighBit
    11) it keeps the low 12 bits as an unsigned number, so negative stored
    values come out 4096 too high (range 0..4095, against -2048..2047 from
    pydicom and GDCM, see the test above, and from the DICOM standard's two's
    complement rule). So the geometry is compared as usual, and the voxels
    as ``ours mod 4096 == dcm2niix`` (which holds exactly, and only this way).
    """
    ours = _quiet_load(dataset_path("dcm-qa-12bit") / "In/12bitSigned_0x0F0F.dcm")
    ref = _dcm2niix_image(dcm2niix_dir, "dcm-qa-12bit", "4_20070203105620")
    assert ours.array.min() < 0 <= ref.array.min()
    wrapped = ours.with_array(np.asarray(ours.array).astype(np.int64) & 0xFFF)
    assert_same_image(wrapped, ref, atol_mm=DCM2NIIX_ATOL_MM)


# ===================================================== coverage: every series is tested
def _listed(cases, dataset: str) -> set[str]:
    return {c.values[1] for c in cases if c.values[0] == dataset}


@pytest.mark.parametrize(
    ("dataset", "n_images"),
    [("dcm-qa-nih", 6), ("dcm-qa-orientation", 7), ("dcm-qa-table", 3), ("dcm-qa-ts", 9),
     ("dcm-qa-enhanced", 3), ("dcm-qa-12bit", 3), ("sts-cohort", 15)],
)
def test_every_series_is_compared(dcm2niix_dir, dataset: str, n_images: int) -> None:
    """medlab finds exactly the series the cases above compare, and (for the
    dcm2niix datasets) dcm2niix writes nothing that no case looks at."""
    root = dataset_path(dataset)
    images = _quiet_load_all(root)
    assert len(images) == n_images, list(images)
    if dataset == "sts-cohort":
        assert len(_listed(SITK_CASES, dataset)) == n_images
        return
    stems = {c.values[-1] for c in D2N_CASES if c.values[0] == dataset}
    if dataset == "dcm-qa-12bit":
        stems.add("4_20070203105620")  # test_12bit_signed_vs_dcm2niix
    written = {Path(p).stem for p in glob.glob(str(dcm2niix_dir(dataset) / "*.nii"))}
    assert written == stems
