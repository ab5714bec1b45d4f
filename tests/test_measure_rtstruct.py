"""ml.measure.label_stats on a real RTSTRUCT GTV (STS_002 CT), rasterised by medlab.segmentation.

The references come from the RTSTRUCT polygons read with pydicom (shoelace
areas and centroids, vertex distances) and from SimpleITK reading the CT
series itself.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

import medlab as ml
import medlab.measure as mm

CT = "dicom/STS_002/CT/image"
RS = "dicom/STS_002/CT/mask/RS.dcm"


def _polygons(path):
    ds = pydicom.dcmread(path)
    return [np.asarray(c.ContourData, dtype=float).reshape(-1, 3)
            for roi in ds.ROIContourSequence for c in roi.ContourSequence]


def _shoelace(p):
    x, y = p[:, 0], p[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    area = cross.sum() / 2
    cx = ((x + xn) * cross).sum() / (6 * area)
    cy = ((y + yn) * cross).sum() / (6 * area)
    return abs(area), np.array([cx, cy, p[0, 2]])


def test_gtv_statistics_agree_with_the_contours_and_simpleitk():
    seg = pytest.importorskip("medlab.segmentation")
    ct = ml.load(ml.data.path("sts-cohort", CT))
    rs = ml.data.path("sts-cohort", RS)
    labels = seg.rtstruct_to_labels(rs, ct)
    row = mm.label_stats(ct, labels).iloc[0]
    assert row["name"] == "GTV_Mass_CT" and row["units"] == "HU"

    polygons = _polygons(rs)
    slice_mm = ct.spacing[0]
    areas, centres = zip(*(_shoelace(p) for p in polygons), strict=True)
    areas = np.asarray(areas)
    # volume: contour areas times the slice spacing (53.27 mL) vs voxel count (53.30 mL)
    assert row["volume_ml"] == pytest.approx(areas.sum() * slice_mm / 1000, rel=0.01)
    centroid = (np.asarray(centres) * areas[:, None]).sum(axis=0) / areas.sum()
    np.testing.assert_allclose(
        row[["centroid_x_mm", "centroid_y_mm", "centroid_z_mm"]].to_numpy(float), centroid,
        atol=0.5)
    # RECIST long axis: the longest vertex-to-vertex distance within one contour; voxel
    # centres inside the contour are at most about two pixels shorter
    longest_contour = max(
        np.max(np.linalg.norm(p[:, None, :2] - p[None, :, :2], axis=-1)) for p in polygons)
    pixel = ct.spacing[1]
    assert longest_contour - 3 * pixel <= row["longest_axial_diameter_mm"] <= longest_contour

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(ml.data.path("sts-cohort", CT))))
    ct_sitk = reader.Execute()
    lab_sitk = sitk.GetImageFromArray(labels.array.astype(np.uint8))
    lab_sitk.CopyInformation(ct_sitk)
    stat = sitk.LabelStatisticsImageFilter()
    stat.Execute(ct_sitk, lab_sitk)
    n = stat.GetCount(1)
    assert row["voxel_count"] == n
    assert row["mean"] == pytest.approx(stat.GetMean(1), rel=1e-9)
    assert row["std"] == pytest.approx(stat.GetSigma(1) * np.sqrt((n - 1) / n), rel=1e-9)
    assert (row["min"], row["max"]) == (stat.GetMinimum(1), stat.GetMaximum(1))
