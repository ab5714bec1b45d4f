"""Reading segmentations onto image grids: RTSTRUCT, DICOM SEG, label maps.

Independent references: scikit-image ``polygon2mask`` (rasterisation),
shapely (exact polygon areas), pydicom (contour points, SEG frames and the
source images' own positions), analytic shapes, and SimpleITK (NRRD).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from scipy import ndimage

import medlab as ml
from medlab import geometry as geo
from medlab import segmentation as mlseg
from medlab.errors import DicomReadError, GeometryError, GeometryMismatchError

skimage_draw = pytest.importorskip("skimage.draw")
shapely = pytest.importorskip("shapely")

STS = ["STS_002", "STS_008", "STS_019", "STS_025", "STS_042"]
MODALITIES = ["CT", "MR_T1", "PET"]
FOR_UID = "1.2.826.0.1.3680043.8.498.1"


# --------------------------------------------------------------- helpers
def write_rtstruct(path: Path, rois, *, for_uid: str = FOR_UID) -> Path:
    """A minimal RTSTRUCT. ``rois``: list of (number, name, [contour points (N, 3)] or
    [(geometric type, points)])."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.StructureSetLabel = "RTSTRUCT", "synthetic"
    fr = Dataset()
    fr.FrameOfReferenceUID = for_uid
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([fr])
    ss, rc, obs = [], [], []
    for number, name, contours in rois:
        item = Dataset()
        item.ROINumber, item.ROIName, item.ReferencedFrameOfReferenceUID = number, name, for_uid
        ss.append(item)
        seq = []
        for c in contours:
            kind, pts = c if isinstance(c, tuple) else ("CLOSED_PLANAR", c)
            cd = Dataset()
            cd.ContourGeometricType = kind
            pts = np.asarray(pts, dtype=float)
            cd.NumberOfContourPoints = len(pts)
            cd.ContourData = [f"{v:.10g}" for v in pts.ravel()]
            seq.append(cd)
        r = Dataset()
        r.ReferencedROINumber, r.ROIDisplayColor = number, [255, 0, number % 256]
        r.ContourSequence = DicomSequence(seq)
        rc.append(r)
        o = Dataset()
        o.ObservationNumber, o.ReferencedROINumber, o.RTROIInterpretedType = number, number, "GTV"
        obs.append(o)
    ds.StructureSetROISequence = DicomSequence(ss)
    ds.ROIContourSequence = DicomSequence(rc)
    ds.RTROIObservationsSequence = DicomSequence(obs)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def grid(shape=(8, 40, 50), spacing=(2.5, 0.8, 0.7), origin=(-20.0, -15.0, 30.0),
         direction=None, for_uid=FOR_UID) -> ml.Image:
    direction = np.eye(3) if direction is None else direction
    affine = geo.compose_affine(spacing, origin, direction)
    return ml.Image(np.zeros(shape, np.int16), affine, meta={"frame_of_reference_uid": for_uid})


def circle(ref: ml.Image, k: float, centre_ji, radius_mm: float, n: int = 360) -> np.ndarray:
    """World points of a circle in the plane of slice ``k`` of ``ref``."""
    a = ref.affine
    u, v = a[:3, 1] / np.linalg.norm(a[:3, 1]), a[:3, 2] / np.linalg.norm(a[:3, 2])
    c = ref.index_to_world([k, *centre_ji])
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return c + radius_mm * (np.cos(t)[:, None] * u + np.sin(t)[:, None] * v)


def square(ref: ml.Image, k: float, lo, hi) -> np.ndarray:
    """World corners of an index-space rectangle [lo, hi] (row, column) on slice ``k``."""
    idx = [[k, lo[0], lo[1]], [k, lo[0], hi[1]], [k, hi[0], hi[1]], [k, hi[0], lo[1]]]
    return ref.index_to_world(np.array(idx, dtype=float))


def boundary_of(mask: np.ndarray) -> np.ndarray:
    """In-plane pixels within one pixel of the edge of ``mask`` (both sides)."""
    st = np.ones((1, 3, 3), bool)
    return ndimage.binary_dilation(mask, st) & ~ndimage.binary_erosion(mask, st)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def shoelace(p2d: np.ndarray) -> float:
    x, y = p2d[:, 0], p2d[:, 1]
    return abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0


def reference_rasterisation(rs_path: Path, image_folder: Path):
    """Rasterise with pydicom + skimage only, using the source files' own geometry.

    Each contour goes to the image it references (ContourImageSequence) or,
    when that is absent or not among the files, to the image whose plane is
    nearest; slices are ordered by
    position along the normal. Returns (mask, slice positions, planimetry mm3).
    """
    heads = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(image_folder.iterdir())]
    iop = np.asarray(heads[0].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    heads.sort(key=lambda h: float(np.dot(np.asarray(h.ImagePositionPatient, float), normal)))
    pos = np.array([np.asarray(h.ImagePositionPatient, float) for h in heads])
    by_uid = {str(h.SOPInstanceUID): k for k, h in enumerate(heads)}
    ps = np.asarray(heads[0].PixelSpacing, float)
    thickness = float(np.median(np.diff(pos @ normal)))
    shape = (len(heads), int(heads[0].Rows), int(heads[0].Columns))
    mask = np.zeros(shape, bool)
    planimetry = 0.0
    rs = pydicom.dcmread(rs_path)
    for c in rs.ROIContourSequence[0].ContourSequence:
        p = np.asarray(c.ContourData, float).reshape(-1, 3)
        refs = [str(r.ReferencedSOPInstanceUID) for r in c.get("ContourImageSequence", [])]
        if refs and refs[0] in by_uid:
            k = by_uid[refs[0]]
        else:  # (the STS re-export gave the images new UIDs: the references dangle)
            k = int(np.argmin(np.abs(pos @ normal - np.mean(p @ normal))))
        d = p - pos[k]
        rows, cols = d @ iop[3:] / ps[0], d @ iop[:3] / ps[1]
        mask[k] ^= skimage_draw.polygon2mask(shape[1:], np.c_[rows, cols])
        planimetry += shoelace(np.c_[d @ iop[:3], d @ iop[3:]]) * thickness
    return mask, pos, planimetry


# ------------------------------------------------------------ rasteriser
def test_fill_polygons_even_odd_matches_skimage_xor():
    rng = np.random.default_rng(7)
    for _ in range(20):
        polys = []
        for _ in range(3):
            n = rng.integers(3, 12)
            ang = np.sort(rng.uniform(0, 2 * np.pi, n))
            rad = rng.uniform(3, 15, n)
            c = rng.uniform(10, 30, 2)
            polys.append(np.c_[c[0] + rad * np.sin(ang), c[1] + rad * np.cos(ang)])
        ours = mlseg.fill_polygons(polys, (40, 45))
        ref = np.zeros((40, 45), bool)
        for p in polys:
            ref ^= skimage_draw.polygon2mask((40, 45), p)
        # random float vertices: no pixel centre lies on an edge, so no ties
        np.testing.assert_array_equal(ours, ref)


def test_fill_polygons_fractions_against_exact_areas():
    rng = np.random.default_rng(3)
    ang = np.sort(rng.uniform(0, 2 * np.pi, 9))
    poly = np.c_[12.2 + 8 * np.sin(ang) * rng.uniform(0.6, 1, 9),
                 13.7 + 9 * np.cos(ang) * rng.uniform(0.6, 1, 9)]
    frac = mlseg.fill_polygons([poly], (26, 28), supersampling=8)
    shape = shapely.Polygon(poly)
    exact = np.array([[shapely.box(j - 0.5, i - 0.5, j + 0.5, i + 0.5).intersection(shape).area
                       for i in range(28)] for j in range(26)])
    assert frac.dtype == np.float32
    assert abs(frac.sum() - shape.area) / shape.area < 2e-3
    assert np.abs(frac - exact).max() <= 2 / 8
    assert np.abs(frac - exact).mean() < 0.01
    # full pixels and empty pixels are exact
    np.testing.assert_array_equal(frac[exact == 1], 1)
    np.testing.assert_array_equal(frac[exact == 0], 0)


def test_fill_polygons_rejects_bad_supersampling():
    with pytest.raises(ValueError, match="supersampling"):
        mlseg.fill_polygons([np.zeros((3, 2))], (4, 4), supersampling=0)


# ------------------------------------------------------ RTSTRUCT synthetic
def test_square_with_hole_and_island(tmp_path):
    ref = grid()
    outer = square(ref, 3, (-0.5, -0.5), (9.5, 9.5))       # 10 x 10 pixels
    hole = square(ref, 3, (2.5, 2.5), (6.5, 6.5))[::-1]     # 4 x 4, reversed winding
    island = square(ref, 3, (3.5, 3.5), (5.5, 5.5))         # 2 x 2 inside the hole
    rs = write_rtstruct(tmp_path / "rs.dcm", [(1, "ring", [outer, hole, island])])
    center = mlseg.rtstruct_to_masks(rs, ref)["ring"]
    frac = mlseg.rtstruct_to_masks(rs, ref, mode="fraction")["ring"]
    expected = np.zeros(ref.spatial_shape, bool)
    expected[3, 0:10, 0:10] = True
    expected[3, 3:7, 3:7] = False
    expected[3, 4:6, 4:6] = True
    np.testing.assert_array_equal(center.array, expected)
    assert center.array.dtype == np.bool_ and frac.array.dtype == np.float32
    # edges on pixel boundaries: the fractions are exact
    np.testing.assert_array_equal(frac.array, expected.astype(np.float32))
    assert center.geometry_equal(ref)
    assert center.meta["roi_number"] == 1 and center.meta["n_planes"] == 1


def test_edges_through_pixel_centres_are_half_open(tmp_path):
    """A centre on a left/top edge is inside, on a right/bottom edge outside."""
    ref = grid()
    rs = write_rtstruct(tmp_path / "rs.dcm", [(1, "A", [square(ref, 1, (5, 5), (10, 12))])])
    m = mlseg.rtstruct_to_masks(rs, ref)["A"].array[1]
    expected = np.zeros_like(m)
    expected[5:10, 5:12] = True
    np.testing.assert_array_equal(m, expected)
    # the area is still exact in fraction mode (a quarter of the edge pixels, 4 x 4 samples)
    frac = mlseg.rtstruct_to_masks(rs, ref, mode="fraction")["A"].array[1]
    assert frac.sum() == pytest.approx(5 * 7)


def test_circle_area_in_fraction_mode(tmp_path):
    ref = grid(spacing=(2.5, 0.8, 0.7))
    r = 9.3
    rs = write_rtstruct(tmp_path / "rs.dcm", [(4, "disc", [circle(ref, 4, (20.2, 24.6), r)])])
    frac = mlseg.rtstruct_to_masks(rs, ref, rois="disc", mode="fraction")["disc"].array
    area = frac.sum() * 0.8 * 0.7
    assert abs(area - np.pi * r**2) / (np.pi * r**2) < 0.01
    assert frac.min() >= 0 and frac.max() <= 1 and np.count_nonzero(frac[[0, 1, 2, 3, 5, 6, 7]]) == 0
    center = mlseg.rtstruct_to_masks(rs, ref, rois=4)["disc"].array
    assert abs(center.sum() * 0.56 - np.pi * r**2) / (np.pi * r**2) < 0.03


@pytest.mark.parametrize("kind", ["oblique", "sheared"])
def test_rotated_and_sheared_grids_against_analytic_disc(tmp_path, kind):
    if kind == "oblique":
        direction = geo.rotation_matrix([20, -10, 35])
    else:  # gantry tilt: slice axis leans 15 degrees, in-plane axes orthonormal
        t = np.deg2rad(15)
        direction = np.array([[0, 0, 1], [np.sin(t), 1, 0], [np.cos(t), 0, 0]], dtype=float)
    ref = grid(shape=(6, 36, 40), spacing=(3.0, 0.9, 0.9), direction=direction)
    r, k, centre = 11.0, 2, (17.3, 19.8)
    rs = write_rtstruct(tmp_path / "rs.dcm", [(1, "disc", [circle(ref, k, centre, r, 720)])])
    mask = mlseg.rtstruct_to_masks(rs, ref)["disc"].array
    jj, ii = np.mgrid[0:36, 0:40]
    world = ref.index_to_world(np.stack([np.full_like(jj, k), jj, ii], -1).reshape(-1, 3))
    dist = np.linalg.norm(world - ref.index_to_world([k, *centre]), axis=1).reshape(36, 40)
    clear = np.abs(dist - r) > 0.01  # a 720-gon deviates from the circle by < 0.001 mm
    np.testing.assert_array_equal(mask[k][clear], (dist < r)[clear])
    assert np.count_nonzero(np.delete(mask, k, axis=0)) == 0
    frac = mlseg.rtstruct_to_masks(rs, ref, mode="fraction", supersampling=6)["disc"].array
    assert abs(frac.sum() * 0.81 - np.pi * r**2) / (np.pi * r**2) < 0.01


def test_contour_off_the_grid_is_an_error_or_clipped(tmp_path):
    ref = grid()
    inside = square(ref, 2, (4.5, 4.5), (10.5, 12.5))
    below = square(ref, -2, (4.5, 4.5), (10.5, 12.5))         # two slices before the first
    wide = square(ref, 4, (4.5, 39.5), (10.5, 60))             # past the last column
    rs = write_rtstruct(tmp_path / "rs.dcm", [(1, "GTV", [inside, below, wide])])
    with pytest.raises(GeometryError, match=r"2 contour plane\(s\)") as exc:
        mlseg.rtstruct_to_masks(rs, ref)
    msg = str(exc.value)
    assert "'GTV' contour(s) [1]" in msg and "slice index -2.00" in msg
    assert "contour 2 on slice 4 extends outside" in msg and "outside='clip'" in msg
    clipped = mlseg.rtstruct_to_masks(rs, ref, outside="clip")["GTV"]
    assert len(clipped.meta["outside"]) == 2
    arr = clipped.array
    assert arr[2].sum() == 6 * 8 and arr[4].sum() == 6 * (49 - 40 + 1)


def test_slice_tolerance_and_dense_planes(tmp_path):
    ref = grid()
    a = square(ref, 3.3, (4.5, 4.5), (10.5, 12.5))
    rs = write_rtstruct(tmp_path / "rs.dcm", [(1, "A", [a])])
    assert mlseg.rtstruct_to_masks(rs, ref)["A"].array[3].sum() == 6 * 8
    # nearest slice along the normal; a plane exactly half-way goes to the higher slice
    for k, expected in [(2.6, 3), (1.5, 2), (6.49, 6)]:
        rs_k = write_rtstruct(tmp_path / f"k{k}.dcm", [(1, "A", [square(ref, k, (4.5, 4.5), (6.5, 6.5))])])
        m = mlseg.rtstruct_to_masks(rs_k, ref)["A"].array
        assert m.any(axis=(1, 2)).nonzero()[0].tolist() == [expected], k
    with pytest.raises(GeometryError, match=r"tolerance 0\.2"):
        mlseg.rtstruct_to_masks(rs, ref, slice_tolerance=0.2)
    # two planes 0.4 slice apart land on slice 3: the nearer one is used, with a warning
    near, far = square(ref, 2.9, (4.5, 4.5), (8.5, 8.5)), square(ref, 3.3, (5, 5), (10, 12))
    rs2 = write_rtstruct(tmp_path / "rs2.dcm", [(1, "A", [near, far])])
    with pytest.warns(UserWarning, match="1 contour plane"):
        m = mlseg.rtstruct_to_masks(rs2, ref)["A"].array
    assert m[3].sum() == 4 * 4


def test_non_parallel_contour_and_point_contours(tmp_path):
    ref = grid()
    tilted = square(ref, 3, (5, 5), (10, 12))
    tilted[2:, :] = ref.index_to_world([[4.5, 10, 12], [4.5, 10, 5]])
    rs = write_rtstruct(tmp_path / "rs.dcm", [(1, "tilted", [tilted])])
    with pytest.raises(GeometryError, match="not parallel to the reference slices"):
        mlseg.rtstruct_to_masks(rs, ref)
    point = ("POINT", ref.index_to_world([[3, 5, 5]]))
    rs2 = write_rtstruct(tmp_path / "rs2.dcm", [(1, "marker", [point])])
    with pytest.warns(UserWarning, match="not CLOSED_PLANAR"):
        m = mlseg.rtstruct_to_masks(rs2, ref)["marker"]
    assert not m.array.any() and m.meta["skipped_contours"] == [0]


def test_frame_of_reference_roi_selection_and_input_errors(tmp_path):
    ref = grid(for_uid="1.2.3.999")
    rs = write_rtstruct(tmp_path / "rs.dcm", [(1, "A", [square(ref, 1, (0.5, 0.5), (4.5, 4.5))])])
    with pytest.raises(GeometryMismatchError, match=r"1\.2\.3\.999") as exc:
        mlseg.rtstruct_to_masks(rs, ref)
    assert FOR_UID in str(exc.value) and "check_frame_of_reference=False" in str(exc.value)
    m = mlseg.rtstruct_to_masks(rs, ref, check_frame_of_reference=False)["A"]
    assert m.array.sum() == 16
    with pytest.raises(mlseg.SegmentationError, match=r"no ROI 'B'; its ROIs are 1: 'A'"):
        mlseg.rtstruct_to_masks(rs, ref, rois="B", check_frame_of_reference=False)
    with pytest.raises(ValueError, match="mode must be"):
        mlseg.rtstruct_to_masks(rs, ref, mode="area")
    with pytest.raises(TypeError, match=r"medlab\.Image"):
        mlseg.rtstruct_to_masks(rs, ref.array)
    ct = ml.data.path("dcmqi", "segmentations/ct-3slice/01.dcm")
    with pytest.raises(DicomReadError, match="is not a RTSTRUCT: its Modality is 'CT'"):
        mlseg.read_rtstruct(ct)


def test_labels_from_rtstruct(tmp_path):
    ref = grid()
    a = square(ref, 2, (0.5, 0.5), (5.5, 5.5))
    b = square(ref, 2, (9.5, 9.5), (12.5, 14.5))
    c = square(ref, 2, (3.5, 3.5), (8.5, 8.5))  # overlaps a
    rs = write_rtstruct(tmp_path / "rs.dcm", [(3, "A", [a]), (7, "B", [b]), (9, "C", [c])])
    table = mlseg.read_rtstruct(rs)
    assert table["name"].tolist() == ["A", "B", "C"] and table["roi_number"].tolist() == [3, 7, 9]
    assert table["colour"].tolist() == [(255, 0, 3), (255, 0, 7), (255, 0, 9)]
    labels = mlseg.rtstruct_to_labels(rs, ref, rois=["A", "B"])
    assert labels.meta["labels"] == {3: "A", 7: "B"} and labels.array.dtype == np.uint8
    assert (labels.array == 3).sum() == 25 and (labels.array == 7).sum() == 15
    with pytest.raises(mlseg.SegmentationError, match=r"'A' \(3\) and 'C' \(9\) share 4 voxels"):
        mlseg.rtstruct_to_labels(rs, ref)
    last = mlseg.rtstruct_to_labels(rs, ref, overlap="last").array
    assert (last == 9).sum() == 25 and (last == 3).sum() == 21
    contours = mlseg.read_contours(rs, rois=7)
    assert len(contours) == 1 and contours.loc[0, "points"].shape == (4, 3)


# ------------------------------------------------------- RTSTRUCT real data
@pytest.mark.parametrize("patient", STS)
@pytest.mark.parametrize("modality", MODALITIES)
def test_sts_gtv_against_independent_rasteriser(patient, modality):
    folder = ml.data.path("sts-cohort", f"dicom/{patient}/{modality}/image")
    rs = ml.data.path("sts-cohort", f"dicom/{patient}/{modality}/mask/RS.dcm")
    image = ml.load(folder)
    table = mlseg.read_rtstruct(rs)
    assert table["name"].tolist() == [f"GTV_Mass_{modality}"]
    assert table.loc[0, "frame_of_reference_uid"] == image.meta["frame_of_reference_uid"]
    assert table.loc[0, "referenced_series_uid"] == image.meta["series_uid"]
    contours = pydicom.dcmread(rs).ROIContourSequence[0].ContourSequence
    assert table.loc[0, "n_contours"] == len(contours)
    assert table.loc[0, "n_planes"] == len({round(float(c.ContourData[2]), 2) for c in contours})

    ref_mask, positions, planimetry = reference_rasterisation(rs, folder)
    np.testing.assert_allclose(image.index_to_world(np.c_[np.arange(len(positions)),
                                                          np.zeros((len(positions), 2))]),
                               positions, atol=1e-3)
    mask = mlseg.rtstruct_to_masks(rs, image)[f"GTV_Mass_{modality}"]
    assert mask.geometry_equal(image) and mask.array.dtype == np.bool_
    # same slices as the contours reference, same pixels up to boundary pixels
    np.testing.assert_array_equal(mask.array.any(axis=(1, 2)), ref_mask.any(axis=(1, 2)))
    assert dice(mask.array, ref_mask) > 0.98
    differ = mask.array ^ ref_mask
    assert not np.any(differ & ~boundary_of(ref_mask))
    voxel = float(np.prod(image.spacing))
    assert abs(mask.array.sum() * voxel - planimetry) / planimetry < 0.03
    frac = mlseg.rtstruct_to_masks(rs, image, mode="fraction")[f"GTV_Mass_{modality}"].array
    assert abs(frac.sum() * voxel - planimetry) / planimetry < 0.01


def test_sts_ct_contours_on_the_pet_grid():
    """Same frame of reference: the CT GTV maps onto the coarser PET grid."""
    pet = ml.load(ml.data.path("sts-cohort", "dicom/STS_008/PET/image"))
    rs = ml.data.path("sts-cohort", "dicom/STS_008/CT/mask/RS.dcm")
    _, _, planimetry = reference_rasterisation(rs, ml.data.path("sts-cohort", "dicom/STS_008/CT/image"))
    frac = mlseg.rtstruct_to_masks(rs, pet, mode="fraction")["GTV_Mass_CT"]
    assert frac.geometry_equal(pet)
    assert abs(frac.array.sum() * np.prod(pet.spacing) - planimetry) / planimetry < 0.01


def test_ibsi_ct_phantom_lesion():
    folder = ml.data.path("ibsi1-ct-phantom", "dicom/image")
    rs = ml.data.path("ibsi1-ct-phantom", "dicom/mask")  # a folder holding one RTSTRUCT
    image = ml.load(folder)
    ref_mask, _, planimetry = reference_rasterisation(
        next(Path(rs).iterdir()), folder)
    mask = mlseg.rtstruct_to_masks(rs, image)["GTV-1"].array
    assert dice(mask, ref_mask) > 0.98
    assert not np.any((mask ^ ref_mask) & ~boundary_of(ref_mask))
    frac = mlseg.rtstruct_to_masks(rs, image, mode="fraction")["GTV-1"].array
    assert abs(frac.sum() * np.prod(image.spacing) - planimetry) / planimetry < 0.01


# ------------------------------------------------------------ DICOM SEG real
def _ct3() -> tuple[ml.Image, dict[str, int]]:
    """The 3-slice CT and, from pydicom alone, SOPInstanceUID -> slice index."""
    folder = ml.data.path("dcmqi", "segmentations/ct-3slice")
    ct = ml.load(folder)
    heads = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(Path(folder).iterdir())]
    heads.sort(key=lambda h: float(h.ImagePositionPatient[2]))  # axial, IOP identity
    z = ct.index_to_world([[k, 0, 0] for k in range(len(heads))])[:, 2]
    np.testing.assert_allclose(z, [float(h.ImagePositionPatient[2]) for h in heads], atol=1e-4)
    return ct, {str(h.SOPInstanceUID): k for k, h in enumerate(heads)}


def _seg_frames(path) -> list[tuple[int, str, np.ndarray]]:
    """(segment number, referenced source UID, pixels) per frame, by pydicom."""
    ds = pydicom.dcmread(path)
    pixels = ds.pixel_array.reshape(int(ds.NumberOfFrames), ds.Rows, ds.Columns)
    out = []
    for fg, px in zip(ds.PerFrameFunctionalGroupsSequence, pixels, strict=True):
        seg_no = int(fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        src = str(fg.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        out.append((seg_no, src, px.astype(bool)))
    return out


def test_seg_liver_lands_on_the_referenced_ct_slices():
    path = ml.data.path("dcmqi", "segmentations/liver.dcm")
    ct, slice_of = _ct3()
    seg = mlseg.read_seg(path, reference=ct)
    assert seg.segmentation_type == "BINARY"
    assert seg.segments[["number", "label", "type"]].values.tolist() == [[1, "Liver", "Liver"]]
    assert seg.frame_of_reference_uid == ct.meta["frame_of_reference_uid"]
    assert seg.referenced_series_uid == ct.meta["series_uid"]
    masks = seg.masks()
    liver = masks[1]
    assert liver.geometry_equal(ct) and liver.array.dtype == np.bool_
    expected = np.zeros(ct.spatial_shape, bool)
    frames = _seg_frames(path)
    for _, src, px in frames:
        expected[slice_of[src]] |= px
    np.testing.assert_array_equal(liver.array, expected)
    assert liver.array.sum() == sum(px.sum() for _, _, px in frames) > 100_000
    assert seg.frames["referenced_sop_instance_uid"].tolist() == [f[1] for f in frames]
    labels = seg.labels()
    np.testing.assert_array_equal(labels.array, expected.astype(np.uint8))
    assert labels.meta["labels"] == {1: "Liver"}


def test_seg_overlapping_segments():
    path = ml.data.path("dcmqi", "segmentations/partial_overlaps.dcm")
    ct, slice_of = _ct3()
    seg = mlseg.read_seg(path)
    assert seg.segments["label"].tolist() == ["GREEN", "ORANGE", "PURPLE", "LIGHT_BLUE", "DARK_BLUE"]
    assert seg.segments["n_frames"].tolist() == [1, 1, 3, 1, 1]
    # CIELab display colours become RGB: each named colour's dominant channel
    rgb = dict(zip(seg.segments["label"], seg.segments["colour"], strict=True))
    assert np.argmax(rgb["GREEN"]) == 1 and np.argmax(rgb["ORANGE"]) == 0
    assert np.argmax(rgb["DARK_BLUE"]) == 2 and rgb["ORANGE"][1] > rgb["ORANGE"][2]
    masks = seg.masks(ct)
    expected = {n: np.zeros(ct.spatial_shape, bool) for n in range(1, 6)}
    for seg_no, src, px in _seg_frames(path):
        expected[seg_no][slice_of[src]] |= px
    for n in range(1, 6):
        np.testing.assert_array_equal(masks[n].array, expected[n], err_msg=f"segment {n}")
        assert masks[n].meta["label"] == seg.segments.loc[n - 1, "label"]
    shared = int(np.count_nonzero(expected[1] & expected[2]))
    assert shared > 0
    with pytest.raises(mlseg.SegmentationError, match=rf"1 'GREEN' and 2 'ORANGE' share {shared} voxels"):
        seg.labels(ct)
    # segments 4 and 5 are disjoint: they make a label map
    labels = seg.labels(ct, segments=["LIGHT_BLUE", 5]).array
    np.testing.assert_array_equal(labels, 4 * expected[4] + 5 * expected[5])
    with pytest.raises(mlseg.SegmentationError, match="no segment 'RED'"):
        seg.masks(ct, segments="RED")


def test_seg_without_its_images_reads_on_its_own_grid():
    path = ml.data.path("dcmqi", "sr-example/seg.dcm")
    seg = mlseg.read_seg(path)
    mask = seg.masks()[1]
    ds = pydicom.dcmread(path)
    ps = np.asarray(ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing, float)
    assert mask.spatial_shape == (13, 128, 128)
    np.testing.assert_allclose(mask.spacing, [3.375, *ps], atol=1e-5)
    pixels = ds.pixel_array.astype(bool)
    for fg, px in zip(ds.PerFrameFunctionalGroupsSequence, pixels, strict=True):
        ipp = np.asarray(fg.PlanePositionSequence[0].ImagePositionPatient, float)
        k, j, i = mask.world_to_index(ipp)
        assert abs(j) < 1e-4 and abs(i) < 1e-4 and abs(k - round(k)) < 1e-4
        np.testing.assert_array_equal(mask.array[round(k)], px)
    assert mask.array.sum() == pixels.sum() == 795
    # a grid from another frame of reference is refused
    with pytest.raises(GeometryMismatchError, match="frame of reference"):
        seg.masks(grid(for_uid="1.2.3.4"))


# ------------------------------------------------------- DICOM SEG synthetic
def _synthetic_seg(tmp_path, kind: str):
    """A rotated-in-plane synthetic CT series and a highdicom SEG of ``kind`` on it."""
    hd = pytest.importorskip("highdicom")
    from helpers import write_dicom_series
    from pydicom.sr.codedict import codes

    iop = (0.8, 0.6, 0.0, -0.6, 0.8, 0.0)
    paths, _ = write_dicom_series(tmp_path / "ct", np.zeros((5, 20, 24), np.int16), iop=iop,
                                  slice_step=(0, 0, 2.5))
    sources = sorted((pydicom.dcmread(p) for p in paths), key=lambda d: float(d.ImagePositionPatient[2]))
    for ds in sources:  # highdicom wants these type-2 attributes present
        for kw in ("StudyDate", "StudyTime", "PatientBirthDate", "PatientSex", "AccessionNumber",
                   "StudyID", "ReferringPhysicianName"):
            setattr(ds, kw, "")
    desc = [hd.seg.SegmentDescription(
        segment_number=n, segment_label=f"S{n}", segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Tissue,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL) for n in (1, 2)]
    truth = np.zeros((5, 20, 24, 2), np.float32)
    truth[1:4, 5:10, 6:12, 0] = 0.5
    truth[2, 7, 8, 0] = 1.0
    truth[3, 12:16, 3:9, 1] = 1.0
    kwargs = dict(series_instance_uid=hd.UID(), series_number=2, sop_instance_uid=hd.UID(),
                  instance_number=1, manufacturer="medlab", manufacturer_model_name="test",
                  software_versions="0", device_serial_number="1")
    if kind == "FRACTIONAL":
        obj = hd.seg.Segmentation(source_images=sources, pixel_array=truth, segment_descriptions=desc,
                                  segmentation_type="FRACTIONAL", max_fractional_value=200, **kwargs)
    else:
        labels = (truth[..., 0] > 0).astype(np.uint8) + 2 * (truth[..., 1] > 0).astype(np.uint8)
        obj = hd.seg.Segmentation(source_images=sources, pixel_array=labels, segment_descriptions=desc,
                                  segmentation_type=kind, **kwargs)
    obj.save_as(tmp_path / "seg.dcm")
    return tmp_path / "seg.dcm", ml.load(tmp_path / "ct"), truth


def test_seg_fractional_on_source_cropped_and_permuted_grids(tmp_path):
    path, ct, truth = _synthetic_seg(tmp_path, "FRACTIONAL")
    seg = mlseg.read_seg(path, reference=ct)
    assert seg.segmentation_type == "FRACTIONAL"
    masks = seg.masks()
    assert masks[1].array.dtype == np.float32
    np.testing.assert_allclose(masks[1].array, truth[..., 0], atol=1 / 200)
    np.testing.assert_array_equal(masks[2].array, truth[..., 1])
    # a crop of the grid (shifted origin): plain slicing is the expected answer
    crop = ct.with_array(ct.array[1:5, 3:18, 4:20],
                         affine=ct.affine @ np.array([[1, 0, 0, 1], [0, 1, 0, 3], [0, 0, 1, 4], [0, 0, 0, 1.0]]))
    np.testing.assert_allclose(seg.masks(crop, segments=1)[1].array, truth[1:5, 3:18, 4:20, 0],
                               atol=1 / 200)
    with pytest.raises(GeometryError, match=r"segment 2 in frame \d \(slice index 2.00"):
        seg.masks(crop)  # segment 2 starts at column 3, left of the crop
    # a parallel grid with half-size pixels: each SEG pixel becomes a 2 x 2 block
    fine_affine = ct.affine @ np.array([[1, 0, 0, 0], [0, 0.5, 0, -0.25], [0, 0, 0.5, -0.25],
                                        [0, 0, 0, 1.0]])
    fine = ml.Image(np.zeros((5, 40, 48)), fine_affine, meta=ct.meta)
    np.testing.assert_allclose(seg.masks(fine)[1].array,
                               truth[..., 0].repeat(2, axis=1).repeat(2, axis=2), atol=1 / 200)
    # frames not parallel to the slices: a reoriented grid (exact permutation of voxels)
    turned = ct.reorient("LSA")
    assert turned.spatial_shape != ct.spatial_shape
    expected = ct.with_array(truth[..., 0]).reorient("LSA").array
    np.testing.assert_allclose(seg.masks(turned)[1].array, expected, atol=1 / 200)
    # label map from fractions >= threshold
    lab = seg.labels(threshold=0.75).array
    np.testing.assert_array_equal(lab, (truth[..., 0] >= 0.75) + 2 * (truth[..., 1] >= 0.75))


def test_seg_labelmap_type_and_outside(tmp_path):
    path, ct, truth = _synthetic_seg(tmp_path, "LABELMAP")
    seg = mlseg.read_seg(path)
    assert seg.segmentation_type == "LABELMAP" and seg.frames["segment"].isna().all()
    masks = seg.masks(ct)
    np.testing.assert_array_equal(masks[1].array, truth[..., 0] > 0)
    np.testing.assert_array_equal(masks[2].array, truth[..., 1] > 0)
    small = ct.with_array(ct.array[:, :10, :])  # segment 2 (rows 12..15) is off this grid
    with pytest.raises(GeometryError, match=r"segment 2 in frame .* fall outside|fall outside"):
        seg.masks(small)
    clipped = seg.masks(small, outside="clip")
    np.testing.assert_array_equal(clipped[1].array, truth[:, :10, :, 0] > 0)
    assert not clipped[2].array.any()


def test_read_seg_input_errors(tmp_path):
    with pytest.raises(DicomReadError, match="is not a DICOM SEG"):
        mlseg.read_seg(ml.data.path("dcmqi", "segmentations/ct-3slice/01.dcm"))
    with pytest.raises(FileNotFoundError):
        mlseg.read_seg(tmp_path / "missing.dcm")
    with pytest.raises(DicomReadError, match="holds 0 DICOM SEG files"):
        mlseg.read_seg(ml.data.path("dcmqi", "segmentations/ct-3slice"))


# ------------------------------------------------------------- label maps
@pytest.mark.parametrize("name", ["brain1_label.nrrd", "brain2_label.nrrd", "breast1_label.nrrd",
                                  "prostate_phantom_subvolume-label.nrrd"])
def test_read_labels_matches_simpleitk(name):
    sitk = pytest.importorskip("SimpleITK")
    path = ml.data.path("pyradiomics-cases", name)
    labels = mlseg.read_labels(path)
    ref = sitk.ReadImage(str(path))
    arr = sitk.GetArrayFromImage(ref)
    assert labels.array.dtype == arr.dtype
    np.testing.assert_array_equal(labels.array, arr)
    assert labels.meta["labels"] == [int(v) for v in np.unique(arr) if v != 0]
    for ijk in [(0, 0, 0), (5, 7, 3), tuple(int(n) - 1 for n in ref.GetSize())]:
        np.testing.assert_allclose(labels.index_to_world(ijk[::-1]),
                                   ref.TransformIndexToPhysicalPoint(ijk), atol=1e-6)


def test_read_labels_onto_a_reference_grid():
    sitk = pytest.importorskip("SimpleITK")
    path = ml.data.path("pyradiomics-cases", "breast1_label.nrrd")
    image = ml.load(ml.data.path("pyradiomics-cases", "breast1_image.nrrd"))
    same = mlseg.read_labels(path, reference=image)
    assert same.geometry_equal(image) and same.meta["voxels_outside"] == 0
    # a coarser grid, shifted by a third of a voxel, covering the image
    spacing = np.asarray(image.spacing) * [1.0, 1.7, 1.7]
    shape = tuple(int(n) for n in np.floor((np.asarray(image.spatial_shape) - 1)
                                           * np.asarray(image.spacing) / spacing))
    origin = image.index_to_world([0, 1 / 3, 1 / 3])
    coarse = ml.Image(np.zeros(shape, np.int16), geo.compose_affine(spacing, origin, image.direction))
    ours = mlseg.read_labels(path, reference=coarse, outside="clip")
    ref_img = sitk.Image([int(n) for n in shape[::-1]], sitk.sitkUInt8)
    ref_img.SetSpacing([float(s) for s in spacing[::-1]])
    ref_img.SetOrigin([float(v) for v in origin])
    ref_img.SetDirection(image.direction[:, ::-1].ravel().tolist())
    expected = sitk.GetArrayFromImage(sitk.Resample(sitk.ReadImage(str(path)), ref_img,
                                                    sitk.Transform(), sitk.sitkNearestNeighbor, 0))
    assert ours.array.dtype == expected.dtype
    assert np.mean(ours.array == expected) > 0.999
    # nothing in common with the reference: a clear error
    far = ml.Image(np.zeros((4, 4, 4)), geo.compose_affine([1, 1, 1], origin + 1000, np.eye(3)))
    with pytest.raises(GeometryError, match="do not overlap"):
        mlseg.read_labels(path, reference=far)


def test_read_labels_partly_outside_and_float_files(tmp_path):
    nib = pytest.importorskip("nibabel")
    lab = np.zeros((10, 12, 14), np.float32)
    lab[2:5, 3:6, 4:7] = 3
    lab[7, 8:10, 1:3] = 1
    img = ml.Image(lab, geo.compose_affine([2, 1, 1], [0, 0, 0], np.eye(3)))
    nib.save(img.to_nibabel(), tmp_path / "lab.nii.gz")
    read = mlseg.read_labels(tmp_path / "lab.nii.gz")
    assert read.array.dtype == np.uint8 and read.meta["converted_from"] == "float32"
    assert read.meta["labels"] == [1, 3]
    np.testing.assert_array_equal(read.array, lab.astype(np.uint8))
    part = ml.Image(np.zeros((6, 12, 14)), img.affine)  # slices 0..5: label 1 (slice 7) is off
    with pytest.raises(GeometryError, match="4 of 31 labelled voxels"):
        mlseg.read_labels(tmp_path / "lab.nii.gz", reference=part)
    clipped = mlseg.read_labels(tmp_path / "lab.nii.gz", reference=part, outside="clip")
    assert clipped.meta["voxels_outside"] == 4 and clipped.meta["labels"] == [3]
    lab[0, 0, 0] = 0.5
    nib.save(img.with_array(lab).to_nibabel(), tmp_path / "prob.nii.gz")
    with pytest.raises(mlseg.SegmentationError, match=r"non-integer values \(e.g. 0.5\)"):
        mlseg.read_labels(tmp_path / "prob.nii.gz")
    with pytest.raises(mlseg.SegmentationError, match="read_seg"):
        mlseg.read_labels(ml.data.path("dcmqi", "segmentations/liver.dcm"))
