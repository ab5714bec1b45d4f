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


def write_dwi_series(folder, *, iop, b_values, b_vectors, adc=1e-3, s0=1000.0, n_slices=3,
                     shape=(6, 5), enhanced=False):
    """A diffusion-weighted MR series with the standard MR Diffusion attributes.

    Classic single-frame files (DiffusionBValue, DiffusionGradientOrientation in
    LPS at the top level) or, with ``enhanced=True``, one Enhanced MR file whose
    per-frame MR Diffusion Sequence carries them. Signal ``s0 * exp(-b * adc)``
    (+ 10 per slice), stored as uint16. Returns the folder.
    """
    from pathlib import Path

    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import (
        EnhancedMRImageStorage,
        ExplicitVRLittleEndian,
        MRImageStorage,
        generate_uid,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    row, col = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    normal = np.cross(row, col)
    study, series, frame_uid = generate_uid(), generate_uid(), generate_uid()

    def base(sop_class):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = (
            study, series, frame_uid)
        ds.Modality, ds.PatientPosition, ds.Manufacturer = "MR", "HFS", "SIEMENS"
        ds.SeriesNumber, ds.PatientName, ds.PatientID = 5, "Phantom^DWI", "DWI001"
        ds.StudyDate = ds.SeriesDate = "20200101"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"]
        ds.Rows, ds.Columns = shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RepetitionTime, ds.EchoTime = 5000, 80
        return ds

    def position(k):
        return [f"{v:.4f}" for v in np.array([10.0, -20.0, 5.0]) + k * 3.0 * normal]

    def pixels(b, k):
        return (s0 * np.exp(-b * adc) * np.ones(shape) + 10 * k).astype(np.uint16)

    def diffusion(item, b, g):
        item.DiffusionBValue = float(b)
        item.DiffusionDirectionality = "DIRECTIONAL" if b > 0 else "NONE"
        if b > 0:
            if enhanced:
                d = Dataset()
                d.DiffusionGradientOrientation = [float(x) for x in g]
                item.DiffusionGradientDirectionSequence = Sequence([d])
            else:
                item.DiffusionGradientOrientation = [float(x) for x in g]

    if enhanced:
        ds = base(EnhancedMRImageStorage)
        shared = Dataset()
        pm, po = Dataset(), Dataset()
        pm.PixelSpacing, pm.SliceThickness, pm.SpacingBetweenSlices = [2.0, 2.0], 3.0, 3.0
        po.ImageOrientationPatient = [f"{v:.6f}" for v in iop]
        shared.PixelMeasuresSequence = Sequence([pm])
        shared.PlaneOrientationSequence = Sequence([po])
        ds.SharedFunctionalGroupsSequence = Sequence([shared])
        per, data = [], []
        for v, (b, g) in enumerate(zip(b_values, b_vectors, strict=True)):
            for k in range(n_slices):
                item, pp, fc, dif = Dataset(), Dataset(), Dataset(), Dataset()
                pp.ImagePositionPatient = position(k)
                fc.TemporalPositionIndex = v + 1
                diffusion(dif, b, g)
                item.PlanePositionSequence = Sequence([pp])
                item.FrameContentSequence = Sequence([fc])
                item.MRDiffusionSequence = Sequence([dif])
                per.append(item)
                data.append(pixels(b, k))
        ds.PerFrameFunctionalGroupsSequence = Sequence(per)
        ds.NumberOfFrames = len(per)
        ds.PixelData = np.stack(data).tobytes()
        pydicom.dcmwrite(folder / "enhanced.dcm", ds, enforce_file_format=True)
        return folder
    inst = 0
    for v, (b, g) in enumerate(zip(b_values, b_vectors, strict=True)):
        for k in range(n_slices):
            inst += 1
            ds = base(MRImageStorage)
            ds.InstanceNumber, ds.AcquisitionNumber = inst, v + 1
            ds.AcquisitionTime = f"1200{v:02d}.000"
            ds.ImageOrientationPatient = [f"{x:.6f}" for x in iop]
            ds.ImagePositionPatient = position(k)
            ds.PixelSpacing, ds.SliceThickness, ds.SpacingBetweenSlices = [2.0, 2.0], 3.0, 3.0
            diffusion(ds, b, g)
            ds.PixelData = pixels(b, k).tobytes()
            pydicom.dcmwrite(folder / f"im{inst:03d}.dcm", ds, enforce_file_format=True)
    return folder
