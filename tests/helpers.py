"""Synthetic test images with known geometry (the one place tests make them)."""

from __future__ import annotations

import numpy as np

import medlab as ml
from medlab import geometry as geo


def synthetic_image(
    shape=(6, 7, 8),
    *,
    spacing=(3.0, 0.8, 0.6),
    origin=(-10.0, 20.0, 5.0),
    direction=None,
    dtype=np.int16,
    seed=0,
) -> ml.Image:
    """A random image with a given grid; values are distinct per voxel."""
    rng = np.random.default_rng(seed)
    arr = rng.permutation(np.prod(shape)).reshape(shape).astype(dtype)
    direction = np.eye(3) if direction is None else np.asarray(direction, dtype=float)
    return ml.Image(arr, geo.compose_affine(spacing, origin, direction))


def write_dicom_series(
    folder,
    array,
    *,
    iop=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    positions=None,
    spacing=(0.8, 0.6),
    slice_step=(0.0, 0.0, 2.5),
    origin=(-50.0, -40.0, 10.0),
    bits_stored=None,
    signed=True,
    intercept=-1024.0,
    slope=1.0,
    modality="CT",
    series_uid=None,
    series_number=3,
    shuffle=True,
    high_bits=0,
    patient_id="SYN001",
    study_uid=None,
    study_date="20240115",
    manufacturer="medlab phantoms",
):
    """Write ``array`` (slices, rows, columns) as a single-frame DICOM series.

    Positions default to ``origin + k * slice_step``. ``high_bits`` is OR-ed into
    the stored words above BitsStored (garbage that readers must ignore).
    Returns the list of paths (in slice order) and the expected LPS affine.
    """
    from pathlib import Path

    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    array = np.asarray(array)
    n = array.shape[0]
    if positions is None:
        positions = [np.asarray(origin) + k * np.asarray(slice_step) for k in range(n)]
    series_uid = series_uid or generate_uid()
    study_uid, for_uid = study_uid or generate_uid(), generate_uid()
    bits_stored = bits_stored or 16
    rng = np.random.default_rng(1)
    names = rng.permutation(n) if shuffle else np.arange(n)
    paths = []
    for k in range(n):
        sop = generate_uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage if modality == "CT" else MRImageStorage
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, sop
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = (
            study_uid, series_uid, for_uid)
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = modality, series_number, n - k
        ds.PatientName, ds.PatientID = f"Phantom^{patient_id}", patient_id
        ds.StudyDate, ds.Manufacturer = study_date, manufacturer
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in iop]
        ds.ImagePositionPatient = [f"{v:.6f}" for v in positions[k]]
        ds.PixelSpacing = [f"{spacing[0]:.6f}", f"{spacing[1]:.6f}"]
        ds.SliceThickness = f"{np.linalg.norm(slice_step):.4f}"
        ds.Rows, ds.Columns = array.shape[1:3]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
        ds.PixelRepresentation = 1 if signed else 0
        ds.RescaleIntercept, ds.RescaleSlope = f"{intercept:g}", f"{slope:g}"
        raw = array[k].astype("<i2" if signed else "<u2")
        if high_bits:
            words = raw.view("<u2") | np.uint16(high_bits)
            raw = words.view(raw.dtype)
        ds.PixelData = raw.tobytes()
        path = folder / f"IMG{names[k]:04d}"
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
    affine = geo.dicom_affine(iop, positions[0], spacing, np.asarray(positions[-1] - positions[0])
                              / max(n - 1, 1) if n > 1 else np.cross(iop[:3], iop[3:]))
    return paths, affine
