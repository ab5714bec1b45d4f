"""Robustness of the DICOM loader on the public test-file collections.

Every file of ``pydicom-testfiles``, ``pydicom-extra``, ``fo-dicom``,
``wg04-modalities`` and ``wg04-codecs`` has an expected outcome in
:data:`EXPECTED`: it loads (and then equals an independent decode by
pydicom), or it is listed in ``skipped`` with a reason matching a pattern.
Further tests cover whole-folder scans, a folder mixing a good series with
junk, codec fidelity against the uncompressed WG04 originals, 2D modalities
and cines, palettes, gzip and DICOMDIR trees, character sets and the errors
of :func:`medlab.load`.
"""

from __future__ import annotations

import functools
import gzip
import os
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pydicom.pixels
import pytest
from pydicom.uid import UID

import medlab
from medlab.errors import (
    DicomReadError,
    MedlabError,
    MultipleImagesError,
    SeriesAssemblyError,
    UnsupportedTransferSyntaxError,
)
from medlab.io.dicom import read_dataset, scan

SWEPT = ("pydicom-testfiles", "pydicom-extra", "fo-dicom", "wg04-modalities", "wg04-codecs")


@functools.cache
def dataset(name: str) -> Path:
    """The local folder of a shared dataset: medlab.data when it can, else MEDLAB_DATA."""
    try:
        return Path(medlab.data.fetch(name, progress=False))
    except Exception:  # registry or hash problem: fall back to the plain folder
        return Path(os.environ.get("MEDLAB_DATA", "").split(os.pathsep)[0]) / name


def _sweep_files() -> list[str]:
    out = []
    for name in SWEPT:
        root = dataset(name)
        if root.is_dir():
            out += [
                f"{name}/{p.relative_to(root).as_posix()}"
                for p in sorted(root.rglob("*"))
                if p.is_file() and p.name != "SOURCE.txt"
            ]
    return out


def data_file(rel: str) -> Path:
    name, _, rest = rel.partition("/")
    return dataset(name) / rest


def needs(*names: str):
    missing = [n for n in names if not dataset(n).is_dir()]
    return pytest.mark.skipif(bool(missing), reason=f"shared dataset(s) not found: {missing}")


# --------------------------------------------------------------------------------------
# Expected outcome of every file: "loads", or a regex the skipped reason must match.
# --------------------------------------------------------------------------------------

LOADS = "loads"
NOT_DICOM = r"not a DICOM file \(no 'DICM' marker at byte 128 and no DICOM tag at the start"
DICOMDIR = r"a DICOMDIR \(index of a DICOM media folder\), not an image; the images it lists"
JPEG_12BIT = (
    r"cannot decode pixel data in transfer syntax JPEG Extended \(Process 2 and 4\) "
    r"\(1\.2\.840\.10008\.1\.2\.4\.51\) with 1[02]-bit samples.*none of pydicom's decoders "
    r"handles 12-bit JPEG Extended.*install it with `pip install python-gdcm`.*gdcmconv --raw"
)


def not_image(modality: str, sop: str) -> str:
    return (
        rf"no image pixel data \(modality {re.escape(modality)}, SOP class {re.escape(sop)}\); "
        "not an image"
    )


def corrupt(ts_name: str) -> str:
    return (
        rf"cannot decode pixel data in transfer syntax {re.escape(ts_name)}: every installed "
        r"decoder \(.*\) failed .*probably corrupt or do not match the header"
    )


EXPECTED: dict[str, str] = {
    # ---- pydicom-testfiles (pydicom 3.0.2 wheel)
    "pydicom-testfiles/693_J2KI.dcm": LOADS,
    "pydicom-testfiles/CT_small.dcm": LOADS,
    "pydicom-testfiles/ExplVR_BigEnd.dcm": LOADS,
    "pydicom-testfiles/ExplVR_BigEndNoMeta.dcm": not_image("RTPLAN", "RT Ion Plan Storage"),
    "pydicom-testfiles/ExplVR_LitEndNoMeta.dcm": not_image("RTPLAN", "RT Ion Plan Storage"),
    "pydicom-testfiles/GDCMJ2K_TextGBR.dcm": LOADS,
    "pydicom-testfiles/J2K_pixelrep_mismatch.dcm": LOADS,
    "pydicom-testfiles/JPEG-lossy.dcm": JPEG_12BIT,
    # the J2K codestream itself is damaged (openjpeg: 14540801 tiles)
    "pydicom-testfiles/JPEG2000-embedded-sequence-delimiter.dcm": corrupt(
        "JPEG 2000 Image Compression (1.2.840.10008.1.2.4.91)"
    ),
    "pydicom-testfiles/JPEG2000.dcm": LOADS,
    "pydicom-testfiles/JPEGLSNearLossless_08.dcm": LOADS,
    "pydicom-testfiles/JPEGLSNearLossless_16.dcm": LOADS,
    "pydicom-testfiles/JPGExtended.dcm": LOADS,  # 8-bit JPEG Extended decodes
    "pydicom-testfiles/MR_small.dcm": LOADS,
    "pydicom-testfiles/MR_small_RLE.dcm": LOADS,
    "pydicom-testfiles/MR_small_bigendian.dcm": LOADS,
    "pydicom-testfiles/MR_small_expb.dcm": LOADS,
    "pydicom-testfiles/MR_small_implicit.dcm": LOADS,
    "pydicom-testfiles/MR_small_jp2klossless.dcm": LOADS,
    "pydicom-testfiles/MR_small_jpeg_ls_lossless.dcm": LOADS,
    "pydicom-testfiles/MR_small_padded.dcm": LOADS,
    "pydicom-testfiles/MR_truncated.dcm": (
        r"MR_truncated\.dcm: the file is truncated: it ends 62 bytes before the end of its "
        r"pixel data \(1 frame\(s\) of 64x64, 8192 bytes declared\).*get the complete file"
    ),
    "pydicom-testfiles/README.txt": NOT_DICOM,
    "pydicom-testfiles/SC_jpeg_no_color_transform.dcm": LOADS,
    "pydicom-testfiles/SC_jpeg_no_color_transform_2.dcm": LOADS,
    "pydicom-testfiles/SC_rgb_dcmtk_+eb+cr.dcm": LOADS,
    "pydicom-testfiles/SC_rgb_dcmtk_+eb+cy+n1.dcm": LOADS,
    "pydicom-testfiles/SC_rgb_dcmtk_+eb+cy+n2.dcm": LOADS,
    "pydicom-testfiles/SC_rgb_dcmtk_+eb+cy+np.dcm": LOADS,
    "pydicom-testfiles/SC_rgb_dcmtk_+eb+cy+s2.dcm": LOADS,
    "pydicom-testfiles/SC_rgb_dcmtk_+eb+cy+s4.dcm": LOADS,
    "pydicom-testfiles/SC_rgb_gdcm_KY.dcm": LOADS,
    "pydicom-testfiles/SC_rgb_jls_lossy_line.dcm": LOADS,
    "pydicom-testfiles/SC_rgb_jls_lossy_sample.dcm": LOADS,
    "pydicom-testfiles/SC_rgb_jpeg.dcm": LOADS,
    "pydicom-testfiles/SC_rgb_jpeg_app14_dcmd.dcm": LOADS,
    "pydicom-testfiles/SC_rgb_jpeg_dcmd.dcm": LOADS,
    "pydicom-testfiles/SC_rgb_jpeg_dcmtk.dcm": LOADS,
    "pydicom-testfiles/SC_rgb_jpeg_gdcm.dcm": LOADS,
    "pydicom-testfiles/SC_rgb_jpeg_lossy_gdcm.dcm": LOADS,
    "pydicom-testfiles/SC_rgb_rle.dcm": LOADS,
    "pydicom-testfiles/SC_rgb_rle_16bit.dcm": LOADS,
    "pydicom-testfiles/SC_rgb_rle_16bit_2frame.dcm": LOADS,
    "pydicom-testfiles/SC_rgb_rle_2frame.dcm": LOADS,
    "pydicom-testfiles/SC_rgb_rle_32bit.dcm": LOADS,  # 32-bit RGB kept as uint32
    "pydicom-testfiles/SC_rgb_rle_32bit_2frame.dcm": LOADS,
    "pydicom-testfiles/SC_rgb_small_odd.dcm": LOADS,
    "pydicom-testfiles/SC_rgb_small_odd_big_endian.dcm": LOADS,
    "pydicom-testfiles/SC_rgb_small_odd_jpeg.dcm": LOADS,
    "pydicom-testfiles/SC_ybr_full_422_uncompressed.dcm": LOADS,
    "pydicom-testfiles/UN_sequence.dcm": not_image("?", "CT Image Storage"),
    "pydicom-testfiles/badVR.dcm": (
        r"badVR\.dcm: Number of Frames \(0028,0008\) is '1A', not a positive integer \(the "
        r"pixel data size suggests 15\).*Correct the header in a copy"
    ),
    "pydicom-testfiles/dicomdirtests/77654033/CR1/6154": LOADS,
    "pydicom-testfiles/dicomdirtests/77654033/CR2/6247": LOADS,
    "pydicom-testfiles/dicomdirtests/77654033/CR3/6278": LOADS,
    "pydicom-testfiles/dicomdirtests/77654033/CT2/17106": LOADS,
    "pydicom-testfiles/dicomdirtests/77654033/CT2/17136": LOADS,
    "pydicom-testfiles/dicomdirtests/77654033/CT2/17166": LOADS,
    "pydicom-testfiles/dicomdirtests/77654033/CT2/17196": LOADS,
    "pydicom-testfiles/dicomdirtests/98892001/CT2N/6293": LOADS,
    "pydicom-testfiles/dicomdirtests/98892001/CT2N/6924": LOADS,
    "pydicom-testfiles/dicomdirtests/98892001/CT5N/2062": LOADS,
    "pydicom-testfiles/dicomdirtests/98892001/CT5N/2392": LOADS,
    "pydicom-testfiles/dicomdirtests/98892001/CT5N/2693": LOADS,
    "pydicom-testfiles/dicomdirtests/98892001/CT5N/3023": LOADS,
    "pydicom-testfiles/dicomdirtests/98892001/CT5N/3353": LOADS,
    "pydicom-testfiles/dicomdirtests/98892003/MR1/15820": LOADS,
    "pydicom-testfiles/dicomdirtests/98892003/MR1/4919": LOADS,
    "pydicom-testfiles/dicomdirtests/98892003/MR1/5641": LOADS,
    "pydicom-testfiles/dicomdirtests/98892003/MR2/15970": LOADS,
    "pydicom-testfiles/dicomdirtests/98892003/MR2/4950": LOADS,
    "pydicom-testfiles/dicomdirtests/98892003/MR2/4981": LOADS,
    "pydicom-testfiles/dicomdirtests/98892003/MR2/5011": LOADS,
    "pydicom-testfiles/dicomdirtests/98892003/MR2/6273": LOADS,
    "pydicom-testfiles/dicomdirtests/98892003/MR2/6605": LOADS,
    "pydicom-testfiles/dicomdirtests/98892003/MR2/6935": LOADS,
    "pydicom-testfiles/dicomdirtests/98892003/MR700/4467": LOADS,
    "pydicom-testfiles/dicomdirtests/98892003/MR700/4528": LOADS,
    "pydicom-testfiles/dicomdirtests/98892003/MR700/4558": LOADS,
    "pydicom-testfiles/dicomdirtests/98892003/MR700/4588": LOADS,
    "pydicom-testfiles/dicomdirtests/98892003/MR700/4618": LOADS,
    "pydicom-testfiles/dicomdirtests/98892003/MR700/4648": LOADS,
    "pydicom-testfiles/dicomdirtests/98892003/MR700/4678": LOADS,
    "pydicom-testfiles/dicomdirtests/DICOMDIR": DICOMDIR,
    "pydicom-testfiles/dicomdirtests/DICOMDIR-bigEnd": DICOMDIR,
    "pydicom-testfiles/dicomdirtests/DICOMDIR-empty.dcm": DICOMDIR,
    "pydicom-testfiles/dicomdirtests/DICOMDIR-implicit": DICOMDIR,
    "pydicom-testfiles/dicomdirtests/DICOMDIR-nooffset": DICOMDIR,
    "pydicom-testfiles/dicomdirtests/DICOMDIR-nopatient": DICOMDIR,
    "pydicom-testfiles/dicomdirtests/DICOMDIR-reordered": DICOMDIR,
    "pydicom-testfiles/dicomdirtests/README.txt": NOT_DICOM,
    "pydicom-testfiles/dicomdirtests/TINY_ALPHA/DICOMDIR": DICOMDIR,
    "pydicom-testfiles/dicomdirtests/TINY_ALPHA/README": NOT_DICOM,
    # TINY_ALPHA/PT000000/ST000000/SE000000/IM*: see TINY_ALPHA_IMAGES below
    "pydicom-testfiles/empty_charset_LEI.dcm": not_image("?", "unknown"),
    "pydicom-testfiles/examples_jpeg2k.dcm": LOADS,
    "pydicom-testfiles/examples_overlay.dcm": LOADS,
    "pydicom-testfiles/examples_palette.dcm": LOADS,
    "pydicom-testfiles/examples_rgb_color.dcm": LOADS,
    "pydicom-testfiles/examples_ybr_color.dcm": LOADS,
    "pydicom-testfiles/image_dfl.dcm": LOADS,  # deflated transfer syntax
    "pydicom-testfiles/liver_1frame.dcm": LOADS,
    "pydicom-testfiles/liver_expb_1frame.dcm": LOADS,
    "pydicom-testfiles/meta_missing_tsyntax.dcm": not_image("?", "unknown"),
    "pydicom-testfiles/nested_priv_SQ.dcm": not_image("?", "unknown"),
    # starts with a stray byte before the first tag: pydicom's own tests expect it to fail
    "pydicom-testfiles/no_meta.dcm": NOT_DICOM,
    "pydicom-testfiles/no_meta_group_length.dcm": not_image("?", "RT Image Storage"),
    "pydicom-testfiles/priv_SQ.dcm": not_image("?", "MR Image Storage"),
    "pydicom-testfiles/reportsi.dcm": not_image("SR", "Basic Text SR Storage"),
    "pydicom-testfiles/reportsi_with_empty_number_tags.dcm": not_image(
        "SR", "Basic Text SR Storage"
    ),
    "pydicom-testfiles/rtdose.dcm": LOADS,
    "pydicom-testfiles/rtdose_1frame.dcm": LOADS,
    "pydicom-testfiles/rtdose_expb.dcm": LOADS,
    "pydicom-testfiles/rtdose_expb_1frame.dcm": LOADS,
    "pydicom-testfiles/rtdose_rle.dcm": LOADS,
    "pydicom-testfiles/rtdose_rle_1frame.dcm": LOADS,
    "pydicom-testfiles/rtplan.dcm": not_image("RTPLAN", "RT Plan Storage"),
    "pydicom-testfiles/rtplan_truncated.dcm": not_image("RTPLAN", "RT Plan Storage"),
    "pydicom-testfiles/rtstruct.dcm": not_image("RTSTRUCT", "RT Structure Set Storage"),
    "pydicom-testfiles/test-SR.dcm": not_image("SR", "Comprehensive SR Storage"),
    "pydicom-testfiles/waveform_ecg.dcm": not_image("ECG", "12-lead ECG Waveform Storage"),
    "pydicom-testfiles/zipMR.gz": LOADS,  # gzip-wrapped DICOM, found by content
    # ---- pydicom-extra (pydicom-data 1.0.0)
    "pydicom-extra/JPGLosslessP14SV1_1s_1f_8b.dcm": LOADS,
    "pydicom-extra/MR-SIEMENS-DICOM-WithOverlays.dcm": LOADS,
    "pydicom-extra/OT-PAL-8-face.dcm": LOADS,  # ACR-NEMA, no transfer syntax, palette
    "pydicom-extra/bad_sequence.dcm": LOADS,
    "pydicom-extra/eCT_Supplemental.dcm": LOADS,
    "pydicom-extra/emri_small.dcm": LOADS,
    "pydicom-extra/emri_small_jpeg_2k_lossless_too_short.dcm": (
        r"the file is truncated \(End of file reached before delimiter \(FFFE,E0DD\) found\), "
        r"so no pixel data could be read"
    ),
    "pydicom-extra/explicit_VR-UN.dcm": LOADS,
    "pydicom-extra/gdcm-US-ALOKA-16_big.dcm": LOADS,
    # ---- fo-dicom test data
    "fo-dicom/CR-MONO1-10-chest": LOADS,  # ACR-NEMA without file meta, found by content
    "fo-dicom/CR-ModalitySequenceLUT.dcm": LOADS,
    "fo-dicom/CT-MONO2-16-ankle": LOADS,
    "fo-dicom/D_CLUNIE_CT1_RLE_FRAGS.dcm": LOADS,
    "fo-dicom/GH1146.dcm": (
        r"GH1146\.dcm: the Pixel Data element is empty although the header describes 1 "
        r"frame\(s\) of 512x512: the file holds no pixel values"
    ),
    "fo-dicom/GH1261.dcm": LOADS,
    "fo-dicom/GH177_D_CLUNIE_CT1_IVRLE_BigEndian_undefined_length.dcm": (
        r"cannot parse the DICOM data \(OSError: No tag to read at file position 81994\); "
        r"the file is malformed or truncated"
    ),
    "fo-dicom/GH184.dcm": LOADS,
    "fo-dicom/GH195.dcm": LOADS,
    "fo-dicom/GH227.dcm": LOADS,  # deflated transfer syntax
    "fo-dicom/GH340.dcm": LOADS,  # ACR-NEMA 12-bit packed pixels, no transfer syntax
    "fo-dicom/GH364.dcm": LOADS,
    "fo-dicom/GH610.dcm": LOADS,
    "fo-dicom/Issue1097_FailToOpenDeflatedFileWithSQ.dcm": not_image(
        "?", "2.25.152752519834663263826301420581341174218"
    ),
    "fo-dicom/OutOfBoundsOverlay.dcm": LOADS,
    "fo-dicom/charset/chrArab.dcm": LOADS,
    "fo-dicom/charset/chrFren.dcm": LOADS,
    "fo-dicom/charset/chrGB2312.dcm": LOADS,
    "fo-dicom/charset/chrGerm.dcm": LOADS,
    "fo-dicom/charset/chrGreek.dcm": LOADS,
    "fo-dicom/charset/chrH31.dcm": LOADS,
    "fo-dicom/charset/chrH32.dcm": LOADS,
    "fo-dicom/charset/chrHbrw.dcm": LOADS,
    "fo-dicom/charset/chrI2.dcm": LOADS,
    "fo-dicom/charset/chrJapMulti.dcm": not_image("CR", "Computed Radiography Image Storage"),
    "fo-dicom/charset/chrJapMultiExplicitIR6.dcm": not_image(
        "CR", "Computed Radiography Image Storage"
    ),
    "fo-dicom/charset/chrKoreanMulti.dcm": not_image("CR", "Computed Radiography Image Storage"),
    "fo-dicom/charset/chrRuss.dcm": LOADS,
    "fo-dicom/charset/chrSQEncoding.dcm": not_image("?", "MR Image Storage"),
    "fo-dicom/charset/chrSQEncoding1.dcm": not_image("?", "MR Image Storage"),
    "fo-dicom/charset/chrX1.dcm": LOADS,
    "fo-dicom/charset/chrX2.dcm": LOADS,
    "fo-dicom/genFile.dcm": corrupt("JPEG Baseline (Process 1) (1.2.840.10008.1.2.4.50)"),
    "fo-dicom/mr_brucker.dcm": LOADS,
    "fo-dicom/multiframe.dcm": (
        r"a tiled whole-slide microscopy image \(140 tiles of 240x240 in a 2281x3175 pixel "
        r"matrix\); medlab does not assemble whole-slide tiles\. Open it with wsidicom"
    ),
    # ---- wg04-modalities (uncompressed originals + 2 CR J2K)
    "wg04-modalities/CT1_UNC.dcm": LOADS,
    "wg04-modalities/CT2_UNC.dcm": LOADS,
    "wg04-modalities/MR1_UNC.dcm": LOADS,
    "wg04-modalities/MR3_UNC.dcm": LOADS,
    "wg04-modalities/MR4_UNC.dcm": LOADS,
    "wg04-modalities/NM1_UNC.dcm": LOADS,
    "wg04-modalities/RG2_J2KR.dcm": LOADS,
    "wg04-modalities/RG3_J2KR.dcm": LOADS,
    "wg04-modalities/US1_UNC.dcm": LOADS,
    "wg04-modalities/XA1_UNC.dcm": LOADS,
    # ---- wg04-codecs
    "wg04-codecs/CT1_J2KI.dcm": LOADS,
    "wg04-codecs/CT1_J2KR.dcm": LOADS,
    "wg04-codecs/CT1_JLSL.dcm": LOADS,
    "wg04-codecs/CT1_JLSN.dcm": LOADS,
    "wg04-codecs/CT1_JPLL.dcm": LOADS,
    "wg04-codecs/CT1_RLE.dcm": LOADS,
    "wg04-codecs/MR1_J2KI.dcm": LOADS,
    "wg04-codecs/MR1_JPLY.dcm": JPEG_12BIT,
    "wg04-codecs/MR1_RLE.dcm": LOADS,
    "wg04-codecs/NM1_JLSN.dcm": LOADS,
    "wg04-codecs/NM1_JPLL.dcm": LOADS,
    "wg04-codecs/US1_J2KR.dcm": LOADS,
    "wg04-codecs/US1_RLE.dcm": LOADS,
    "wg04-codecs/XA1_JPLY.dcm": JPEG_12BIT,
    "wg04-codecs/XA1_RLE.dcm": LOADS,
}

#: pydicom strips the pixel data of its TINY_ALPHA DICOMDIR tree: 50 CT headers
TINY_ALPHA_IMAGES = "pydicom-testfiles/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/"
TINY_ALPHA_OUTCOME = not_image("CT", "CT Image Storage")


def expected(rel: str) -> str:
    if rel.startswith(TINY_ALPHA_IMAGES):
        return TINY_ALPHA_OUTCOME
    return EXPECTED[rel]


SWEEP = _sweep_files()


# --------------------------------------------------------------------------------------
# helpers: quiet loading, an independent decode with pydicom, frame matching
# --------------------------------------------------------------------------------------


def load_all(path: Path, **kwargs) -> medlab.io.ImageCollection:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return medlab.io.load_all(path, progress=False, **kwargs)


def load(path: Path, **kwargs) -> medlab.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return medlab.load(path, **kwargs)


def pydicom_dataset(path: Path) -> pydicom.Dataset:
    """A full pydicom read (gzip aware), with the transfer syntax filled in when missing."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = read_dataset(path)
    if "TransferSyntaxUID" not in ds.file_meta:
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = UID(
            "1.2.840.10008.1.2.2" if not little
            else "1.2.840.10008.1.2" if implicit else "1.2.840.10008.1.2.1"
        )
    return ds


def _rescale_of(ds: pydicom.Dataset, i: int) -> tuple[float, float]:
    """Slope and intercept of frame ``i``: per-frame group, shared group, or top level."""
    for seq in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
        items = ds.get(seq)
        if not items:
            continue
        item = items[i] if seq.startswith("PerFrame") and i < len(items) else items[0]
        pvt = item.get("PixelValueTransformationSequence")
        if pvt and "RescaleSlope" in pvt[0]:
            return float(pvt[0].RescaleSlope), float(pvt[0].RescaleIntercept)
    slope = float(ds.get("RescaleSlope") or 1.0) or 1.0
    return slope, float(ds.get("RescaleIntercept") or 0.0)


def pydicom_frames(path: Path) -> list[np.ndarray]:
    """Each frame as pydicom decodes it: RGB for colour (palette applied), and slope /
    intercept applied to grey data, or pydicom's ``apply_modality_lut`` where a Modality LUT
    Sequence replaces them."""
    ds = pydicom_dataset(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr = pydicom.pixels.pixel_array(ds)
        if ds.get("PhotometricInterpretation") == "PALETTE COLOR":
            arr = pydicom.pixels.apply_color_lut(arr, ds)
    n = int(ds.get("NumberOfFrames") or 1)
    frames = list(arr) if n > 1 else [arr]
    if int(ds.get("SamplesPerPixel") or 1) == 1 and ds.get("PhotometricInterpretation") != (
        "PALETTE COLOR"
    ):
        if ds.get("ModalityLUTSequence"):
            return [pydicom.pixels.apply_modality_lut(f, ds) for f in frames]
        out = []
        for i, f in enumerate(frames):
            slope, inter = _rescale_of(ds, i)
            out.append(f if (slope, inter) == (1.0, 0.0) else f * slope + inter)
        frames = out
    return frames


def medlab_frames(img: medlab.Image) -> list[np.ndarray]:
    """The 2D (or 2D RGB) frames of an image: every slice at every time point."""
    a = img.array
    if img.frame_times_s is None:
        return list(a)
    return [a[k, :, :, t] for k in range(a.shape[0]) for t in range(a.shape[3])]


def same_frames(got: list[np.ndarray], ref: list[np.ndarray]) -> bool:
    """Equal as multisets (medlab sorts frames in space and time): exact for integers,
    to float32 precision for rescaled data."""
    if len(got) != len(ref):
        return False

    def eq(x: np.ndarray, y: np.ndarray) -> bool:
        if x.shape != y.shape:
            return False
        if x.dtype.kind in "iu" and np.asarray(y).dtype.kind in "iu":
            return np.array_equal(x, y)
        return np.allclose(x, y, rtol=1e-6, atol=1e-6 * max(1.0, float(np.abs(y).max())))

    if all(eq(x, y) for x, y in zip(got, ref, strict=True)):
        return True
    left = list(range(len(ref)))
    for x in got:
        j = next((j for j in left if eq(x, ref[j])), None)
        if j is None:
            return False
        left.remove(j)
    return True


#: files whose data the sweep cannot compare with pydicom, and where they are checked
NO_PYDICOM_REFERENCE = {
    "fo-dicom/GH340.dcm": "pydicom refuses Bits Allocated 12: test_acr_nema_12bit_matches_gdcm",
}


@dataclass
class Outcome:
    """What load_all gave for one file, kept for the folder tests."""

    n_images: int
    image_files: list[set[str]]
    image_ids: list[str]
    series_uids: list[str]
    skipped: list[tuple[str, str]]


_OUTCOMES: dict[str, Outcome] = {}


def outcome_of(rel: str, col: medlab.io.ImageCollection | None = None) -> Outcome:
    if rel not in _OUTCOMES:
        col = load_all(data_file(rel)) if col is None else col
        _OUTCOMES[rel] = Outcome(
            n_images=len(col),
            image_files=[set(img.meta["files"]) for img in col.values()],
            image_ids=list(col),
            series_uids=[img.meta.get("series_uid", "") for img in col.values()],
            skipped=[(str(p), str(r)) for p, r in col.skipped.itertuples(index=False)],
        )
    return _OUTCOMES[rel]


# --------------------------------------------------------------------------------------
# 1. the per-file sweep
# --------------------------------------------------------------------------------------


def test_every_swept_file_has_an_expected_outcome():
    if not SWEEP:
        pytest.skip("none of the swept datasets is available")
    listed = {r for r in SWEEP if not r.startswith(TINY_ALPHA_IMAGES)}
    assert sorted(listed - set(EXPECTED)) == [], "files without an expected outcome"
    assert sorted(set(EXPECTED) - listed) == [], "expected outcomes for files that do not exist"
    assert sum(r.startswith(TINY_ALPHA_IMAGES) for r in SWEEP) == 50


@pytest.mark.parametrize("rel", SWEEP)
def test_file_loads_or_is_skipped_with_a_clear_reason(rel):
    path = data_file(rel)
    col = load_all(path)  # must never raise
    out = outcome_of(rel, col)
    want = expected(rel)
    if want == LOADS:
        assert len(col) >= 1 and out.skipped == [], out.skipped
        if rel in NO_PYDICOM_REFERENCE:
            return
        (img,) = col.values()
        assert img.meta["files"] == [str(path)]
        assert same_frames(medlab_frames(img), pydicom_frames(path)), (
            f"{rel}: medlab's pixels differ from pydicom's decode"
        )
    else:
        assert len(col) == 0, f"{rel} was expected to be skipped but loaded {list(col)}"
        assert len(out.skipped) == 1, out.skipped
        reason = out.skipped[0][1]
        assert reason.startswith(f"{path.name}:"), f"the reason must name the file: {reason}"
        assert re.search(want, reason), f"{rel}: reason {reason!r} does not match {want!r}"
        # medlab.load gives a medlab error saying the same
        with pytest.raises(MedlabError) as err:
            load(path)
        if path.name not in ("README.txt", "README", "no_meta.dcm"):  # format errors
            assert re.search(want, str(err.value)), str(err.value)


# --------------------------------------------------------------------------------------
# 2. whole folders, and a folder mixing a good series with junk
# --------------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under root, with size and modification time."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in [root, *root.rglob("*")]
    }


@pytest.mark.parametrize("name", SWEPT)
def test_folder_scan_accounts_for_every_file(name):
    root = dataset(name)
    if not root.is_dir():
        pytest.skip(f"dataset {name} not found")
    before = snapshot(root)
    col = load_all(root)  # must never raise
    assert snapshot(root) == before, "loading wrote into the source folder"

    rels = [r for r in SWEEP if r.startswith(f"{name}/")]
    per = {str(data_file(r)): outcome_of(r) for r in rels}
    rows = [(p, r) for p, r in col.skipped.itertuples(index=False)]
    source_txt = str(root / "SOURCE.txt")  # our provenance note, not in the sweep
    assert [r for p, r in rows if p == source_txt] == [
        f"SOURCE.txt: not a DICOM file (no 'DICM' marker at byte 128 and no DICOM tag at the "
        f"start; {(root / 'SOURCE.txt').stat().st_size} bytes)"
    ]
    rows = [(p, r) for p, r in rows if p != source_txt]
    file_rows = {p: r for p, r in rows if p in per}
    series_rows = [(p, r) for p, r in rows if p not in per]

    # a file that fails on its own (not DICOM, not an image, broken) fails the same way here
    for f, o in per.items():
        own = [r for p, r in o.skipped if p == f]
        if own:
            assert file_rows.get(f) == own[0]
    # a file listed on its own here failed on its own too, for the same reason
    for f, r in file_rows.items():
        assert r in [reason for _, reason in per[f].skipped], (f, r)
    # images hold only files that load on their own, each file in one image only
    in_images = [f for img in col.values() for f in img.meta["files"]]
    assert len(in_images) == len(set(in_images))
    for f in in_images:
        assert per[f].n_images >= 1, f"{f} is in a folder image but does not load alone"
    # a file that loads alone is in an image here, or its series is listed as not loaded
    lost = [f for f, o in per.items() if o.n_images and f not in in_images and f not in file_rows]
    for f in lost:
        base = per[f].image_ids[0].split("~")[0]
        assert any(p.startswith(base) for p, _ in series_rows), f"{f} vanished from the scan"
    # a file failing at decode time alone is reported here (alone or in its series' row)
    for f, o in per.items():
        for p, r in o.skipped:
            if p != f:
                assert r in [reason for _, reason in rows]
    # where every file is its own series, the counts add up exactly
    uids = [u for o in per.values() for u in o.series_uids]
    if len(uids) == len(set(uids)):
        assert len(col) == sum(o.n_images for o in per.values())
        assert len(rows) == sum(len(o.skipped) for o in per.values())


def _sorted_ct_slices(n: int) -> list[Path]:
    folder = dataset("sts-cohort") / "dicom" / "STS_002" / "CT" / "image"
    files = sorted(folder.glob("*.dcm"))
    z = {f: float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in files}
    return sorted(files, key=z.get)[:n]


def _junk(folder: Path) -> None:
    (folder / "notes.txt").write_text("scanner export log\n")
    (folder / "x.dcm").write_bytes(np.random.default_rng(0).bytes(4096))
    (folder / "empty").write_bytes(b"")


@needs("sts-cohort")
def test_mixed_folder_loads_the_series_and_lists_the_rest(tmp_path):
    slices = _sorted_ct_slices(5)
    for i, f in enumerate(slices):
        shutil.copy(f, tmp_path / f"slice{i}.dcm")
    data = slices[2].read_bytes()
    (tmp_path / "slice2_copy.dcm").write_bytes(data[: len(data) - 5000])  # truncated copy
    _junk(tmp_path)
    before = snapshot(tmp_path)

    col = load_all(tmp_path)

    assert snapshot(tmp_path) == before, "loading wrote into the source folder"
    (img,) = col.values()
    assert img.shape[0] == 5
    reference = load(slices[0].parent, irregular="stack")  # the whole original series
    np.testing.assert_array_equal(img.array, reference.array[:5])
    reasons = {Path(p).name: r for p, r in col.skipped.itertuples(index=False)}
    assert set(reasons) == {"slice2_copy.dcm", "notes.txt", "x.dcm", "empty"}
    assert re.search(r"slice2_copy\.dcm: the file is truncated: it ends 5000 bytes before "
                     r"the end of its pixel data", reasons["slice2_copy.dcm"])
    assert re.search(NOT_DICOM, reasons["notes.txt"])
    assert re.search(NOT_DICOM, reasons["x.dcm"])
    assert reasons["empty"] == "empty: empty file (0 bytes); not a DICOM file"
    # medlab.load gives the one image despite the junk
    assert load(tmp_path).shape == img.shape


@needs("sts-cohort")
def test_truncated_slice_inside_a_series_is_listed_and_leaves_a_gap(tmp_path):
    slices = _sorted_ct_slices(5)
    for i, f in enumerate(slices):
        data = f.read_bytes()
        (tmp_path / f"slice{i}.dcm").write_bytes(data if i != 2 else data[:-100])
    _junk(tmp_path)

    col = load_all(tmp_path)

    assert len(col) == 0
    rows = dict(col.skipped.itertuples(index=False))
    assert re.search(r"slice2\.dcm: the file is truncated", rows[str(tmp_path / "slice2.dcm")])
    (series_id,) = [p for p in rows if not Path(p).exists()]
    assert re.search(r"1 missing slice\(s\): the spacing is 3\.27 mm but jumps to 6\.54 mm "
                     r"\(after slice 1\)\. Pass irregular='stack'", rows[series_id])
    with pytest.raises(SeriesAssemblyError, match=r"1 missing slice\(s\)"):
        load(tmp_path)
    # asked to, medlab stacks the 4 good slices and says what is wrong
    with pytest.warns(UserWarning, match="missing slice"):
        img = medlab.load(tmp_path, irregular="stack")
    assert img.shape[0] == 4
    assert "1 missing slice" in img.meta["geometry_warning"]


@needs("sts-cohort")
def test_undecodable_slice_inside_a_series_is_listed_and_leaves_a_gap(tmp_path):
    from pydicom.encaps import encapsulate

    slices = _sorted_ct_slices(5)
    for i, f in enumerate(slices):
        shutil.copy(f, tmp_path / f"slice{i}.dcm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the real header has over-long SH values
        ds = pydicom.dcmread(slices[2])  # slice 2 becomes a JPEG whose stream is garbage
        ds.PixelData = encapsulate([bytes(range(256)) * 4])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.50")
        ds.save_as(tmp_path / "slice2.dcm", enforce_file_format=True)

    col = load_all(tmp_path)  # the header is fine: only decoding fails

    rows = dict(col.skipped.itertuples(index=False))
    assert re.search(corrupt("JPEG Baseline (Process 1) (1.2.840.10008.1.2.4.50)"),
                     rows.pop(str(tmp_path / "slice2.dcm")))
    ((_series_id, reason),) = rows.items()
    assert re.search(r"1 missing slice\(s\)", reason)
    with pytest.warns(UserWarning, match="missing slice"):
        img = medlab.load(tmp_path, irregular="stack")
    assert img.shape[0] == 4 and img.meta["excluded_files"] == [str(tmp_path / "slice2.dcm")]


# --------------------------------------------------------------------------------------
# 3. codecs
# --------------------------------------------------------------------------------------

LOSSLESS = ["CT1_RLE", "CT1_JLSL", "CT1_JPLL", "CT1_J2KR", "MR1_RLE", "NM1_JPLL", "US1_RLE",
            "US1_J2KR", "XA1_RLE"]
LOSSY_MAX_DIFF = {"CT1_JLSN": 4, "NM1_JLSN": 4, "CT1_J2KI": 352, "MR1_J2KI": 396}


@pytest.fixture(scope="module")
def originals() -> dict[str, medlab.Image]:
    """The uncompressed WG04 originals, loaded once."""
    root = dataset("wg04-modalities")
    return {stem: load(root / f"{stem}_UNC.dcm") for stem in ("CT1", "MR1", "NM1", "US1", "XA1")}


@needs("wg04-modalities", "wg04-codecs")
@pytest.mark.parametrize("name", LOSSLESS)
def test_lossless_codec_is_bit_identical_to_the_original(name, originals):
    img = load(dataset("wg04-codecs") / f"{name}.dcm")
    ref = originals[name.split("_")[0]]
    assert img.dtype == ref.dtype and img.shape == ref.shape
    np.testing.assert_array_equal(img.array, ref.array)
    np.testing.assert_array_equal(img.affine, ref.affine)


@needs("wg04-modalities")
@pytest.mark.parametrize("stem", ["CT1", "MR1", "NM1", "US1", "XA1"])
def test_uncompressed_originals_equal_pydicom(stem, originals):
    path = dataset("wg04-modalities") / f"{stem}_UNC.dcm"
    assert same_frames(medlab_frames(originals[stem]), pydicom_frames(path))


@needs("wg04-modalities", "wg04-codecs")
@pytest.mark.parametrize("name", sorted(LOSSY_MAX_DIFF))
def test_lossy_codec_is_within_its_bound(name, originals):
    img = load(dataset("wg04-codecs") / f"{name}.dcm")
    ref = originals[name.split("_")[0]]
    diff = img.array.astype(np.int64) - ref.array.astype(np.int64)
    assert 0 < np.abs(diff).max() <= LOSSY_MAX_DIFF[name]  # lossy, within the WG04 bound
    value_range = float(ref.array.max()) - float(ref.array.min())
    assert np.sqrt(np.mean(diff.astype(float) ** 2)) < 0.02 * value_range


@needs("wg04-codecs", "pydicom-testfiles")
@pytest.mark.parametrize(
    "rel", ["wg04-codecs/MR1_JPLY.dcm", "wg04-codecs/XA1_JPLY.dcm", "pydicom-testfiles/JPEG-lossy.dcm"]
)
def test_12bit_jpeg_extended_raises_a_clear_unsupported_error(rel):
    path = data_file(rel)
    with pytest.raises(
        UnsupportedTransferSyntaxError,
        match=r"cannot decode pixel data in transfer syntax JPEG Extended.*1\.2\.840\.10008\.1\.2"
              r"\.4\.51.*install it with `pip install python-gdcm`.*gdcmconv --raw "
              + re.escape(path.name),
    ):
        load(path)


MR_SMALL_VARIANTS = ["MR_small_implicit", "MR_small_bigendian", "MR_small_expb", "MR_small_RLE",
                     "MR_small_jpeg_ls_lossless", "MR_small_jp2klossless", "MR_small_padded"]


@needs("pydicom-testfiles")
@pytest.mark.parametrize("name", MR_SMALL_VARIANTS)
def test_transfer_syntax_variants_of_mr_small_are_identical(name):
    root = dataset("pydicom-testfiles")
    ref = load(root / "MR_small.dcm")
    img = load(root / f"{name}.dcm")
    assert img.dtype == ref.dtype
    np.testing.assert_array_equal(img.array, ref.array)
    np.testing.assert_allclose(img.affine, ref.affine)


@needs("pydicom-testfiles", "fo-dicom")
@pytest.mark.parametrize("rel", ["pydicom-testfiles/image_dfl.dcm", "fo-dicom/GH227.dcm"])
def test_deflated_transfer_syntax_loads(rel):
    path = data_file(rel)
    assert str(pydicom_dataset(path).file_meta.TransferSyntaxUID) == "1.2.840.10008.1.2.1.99"
    img = load(path)
    assert img.shape == (1, 512, 512)
    assert same_frames(medlab_frames(img), pydicom_frames(path))


@needs("pydicom-testfiles")
def test_a_transfer_syntax_without_any_decoder_says_so(tmp_path):
    from pydicom.encaps import encapsulate

    ds = pydicom_dataset(dataset("pydicom-testfiles") / "MR_small.dcm")
    ds.PixelData = encapsulate([ds.PixelData])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.100")  # MPEG2 video
    ds.save_as(tmp_path / "video.dcm", enforce_file_format=True)
    with pytest.raises(
        UnsupportedTransferSyntaxError,
        match=r"video\.dcm: cannot decode pixel data in transfer syntax MPEG2 Main Profile "
              r"/ Main Level \(1\.2\.840\.10008\.1\.2\.4\.100\): pydicom has no decoder for it.*"
              r"ffmpeg",
    ):
        load(tmp_path / "video.dcm")


@needs("wg04-codecs")
def test_a_missing_decoder_names_what_to_install(monkeypatch):
    from medlab.io.dicom import _pixels

    def no_plugin(*args, **kwargs):
        raise RuntimeError("Unable to decode as there are no pixel data plugins available")

    monkeypatch.setattr(pydicom.pixels, "pixel_array", no_plugin)
    monkeypatch.setattr(_pixels, "_decoders_for", lambda ts: ())
    monkeypatch.setattr(_pixels, "_imagecodecs", lambda: None)  # medlab's own fast decoders
    with pytest.raises(
        UnsupportedTransferSyntaxError,
        match=r"CT1_JPLL\.dcm: cannot decode pixel data in transfer syntax JPEG Lossless, "
              r"Non-Hierarchical, First-Order Prediction.*no decoder for it is installed.*"
              r"pip install pylibjpeg pylibjpeg-libjpeg \(or: pip install python-gdcm\)",
    ):
        load(dataset("wg04-codecs") / "CT1_JPLL.dcm")


# --------------------------------------------------------------------------------------
# 4. 2D modalities, colour, cines, gzip, DICOMDIR
# --------------------------------------------------------------------------------------


@needs("wg04-modalities", "fo-dicom")
@pytest.mark.parametrize("rel", ["wg04-modalities/RG3_J2KR.dcm", "fo-dicom/CR-ModalitySequenceLUT.dcm"])
def test_monochrome1_keeps_the_stored_values_and_flags_inversion(rel):
    path = data_file(rel)
    img = load(path)
    ds = pydicom_dataset(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    assert img.meta["modality"] == "CR"
    assert img.meta["invert_display"] is True
    # the modality values (CR-ModalitySequenceLUT: its Modality LUT Sequence applied), not
    # inverted for display
    expected = pydicom.pixels.apply_modality_lut(ds.pixel_array, ds)
    np.testing.assert_array_equal(img.array[0], expected)


@needs("wg04-modalities")
def test_monochrome2_is_not_flagged_for_inversion():
    img = load(dataset("wg04-modalities") / "RG2_J2KR.dcm")
    assert "invert_display" not in img.meta


@needs("wg04-modalities")
def test_us_rgb_single_frame(originals):
    img = originals["US1"]
    assert img.shape == (1, 480, 640, 3) and img.dtype == np.uint8 and img.channels
    assert img.frame_times_s is None
    ds = pydicom_dataset(dataset("wg04-modalities") / "US1_UNC.dcm")
    np.testing.assert_array_equal(img.array[0], ds.pixel_array)


@pytest.fixture(scope="module")
def us_cine() -> medlab.Image:
    return load(dataset("us-cine") / "color3d_jpeg_baseline.dcm")


@needs("us-cine")
def test_us_ybr_cine_decodes_to_rgb_with_frame_times(us_cine):
    img = us_cine
    assert img.shape == (1, 480, 640, 120, 3) and img.dtype == np.uint8 and img.channels
    assert img.n_frames == 120
    np.testing.assert_allclose(np.diff(img.frame_times_s), 0.033333, atol=1e-5)
    ds = pydicom_dataset(dataset("us-cine") / "color3d_jpeg_baseline.dcm")
    assert ds.PhotometricInterpretation == "YBR_FULL_422"
    for t in (0, 77):
        np.testing.assert_array_equal(img.array[0, :, :, t], pydicom.pixels.pixel_array(ds, index=t))


@needs("xa-mr-cine")
def test_xa_cine_one_fragment_per_frame():
    path = dataset("xa-mr-cine") / "HasFragmentSequence.dcm"
    img = load(path)
    assert img.meta["modality"] == "XA"
    assert img.shape == (1, 512, 512, 96)
    np.testing.assert_allclose(np.diff(img.frame_times_s), 0.033)
    ds = pydicom_dataset(path)
    for t in (0, 95):
        np.testing.assert_array_equal(img.array[0, :, :, t], pydicom.pixels.pixel_array(ds, index=t))


@needs("wg04-modalities")
def test_nm_whole_body(originals):
    img = originals["NM1"]
    assert img.meta["modality"] == "NM"
    assert img.shape == (1, 1024, 256)
    assert img.spacing[1:] == pytest.approx((2.26, 2.26), abs=0.01)


@needs("pydicom-extra", "pydicom-testfiles")
@pytest.mark.parametrize(
    "rel",
    ["pydicom-extra/OT-PAL-8-face.dcm", "pydicom-extra/gdcm-US-ALOKA-16_big.dcm",
     "pydicom-testfiles/examples_palette.dcm"],
)
def test_palette_color_becomes_rgb_through_the_lut(rel):
    path = data_file(rel)
    img = load(path)
    ds = pydicom_dataset(path)
    assert ds.PhotometricInterpretation == "PALETTE COLOR"
    rgb = pydicom.pixels.apply_color_lut(pydicom.pixels.pixel_array(ds), ds)
    assert img.channels and img.shape == (1, *rgb.shape)
    np.testing.assert_array_equal(img.array[0], rgb)


@needs("nibabel-header-only")
def test_gzipped_dicom_is_found_by_content(tmp_path):
    root = dataset("nibabel-header-only")
    col = load_all(root)
    files = {f for img in col.values() for f in img.meta["files"]}
    assert files == {str(p) for p in root.glob("*.dcm.gz")}
    assert [Path(p).name for p in col.skipped["path"]] == ["SOURCE.txt"]
    shapes = sorted(img.shape for img in col.values())
    assert shapes == [(48, 128, 128, 2), (176, 256, 256)]  # 2 Siemens mosaics; Philips 3D
    # the name does not matter: a gzip without extension, a plain copy named .txt
    raw = gzip.decompress((root / "siemens_dwi_0.dcm.gz").read_bytes())
    (tmp_path / "noext").write_bytes(gzip.compress(raw))
    (tmp_path / "plain.txt").write_bytes(raw)
    a, b = load(tmp_path / "noext"), load(tmp_path / "plain.txt")
    assert a.shape == b.shape == (48, 128, 128)
    np.testing.assert_array_equal(a.array, b.array)


@needs("pydicom-testfiles")
def test_dicomdir_tree_loads_its_images():
    root = dataset("pydicom-testfiles") / "dicomdirtests"
    col = load_all(root)
    rows = dict(col.skipped.itertuples(index=False))
    dicomdirs = [p for p in rows if Path(p).name.startswith("DICOMDIR")]
    assert len(dicomdirs) == 8
    assert all(re.search(DICOMDIR, rows[p]) for p in dicomdirs)
    smartscore = col["S005-SmartScore_-_Gated_0.5_sec"]
    assert smartscore.shape == (5, 16, 16)
    files = {f for img in col.values() for f in img.meta["files"]}
    # the image files have no extension: found by content
    assert all(Path(f).suffix == "" for f in files) and len(files) >= 20


@needs("fo-dicom")
def test_acr_nema_12bit_matches_gdcm():
    gdcm = pytest.importorskip("gdcm")
    path = dataset("fo-dicom") / "GH340.dcm"
    reader = gdcm.ImageReader()
    reader.SetFileName(str(path))
    assert reader.Read()
    ref = np.frombuffer(
        reader.GetImage().GetBuffer().encode("utf-8", "surrogateescape"), dtype=np.uint16
    ).reshape(256, 256)
    img = load(path)
    assert img.dtype == np.uint16
    np.testing.assert_array_equal(img.array[0], ref)


@needs("fo-dicom")
def test_tiny_rescale_slope_is_not_rounded_away():
    path = dataset("fo-dicom") / "GH610.dcm"  # GE PET, slope 5.949e-08
    img = load(path)
    assert img.dtype.kind == "f" and img.array.max() > 0
    assert same_frames(medlab_frames(img), pydicom_frames(path))


# --------------------------------------------------------------------------------------
# 5. character sets
# --------------------------------------------------------------------------------------

CHARSET = sorted(r for r in EXPECTED if r.startswith("fo-dicom/charset/") and EXPECTED[r] == LOADS)


@needs("fo-dicom")
@pytest.mark.parametrize("rel", CHARSET)
def test_character_sets_decode_like_pydicom(rel):
    path = data_file(rel)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frames, skipped = scan(path, progress=False)
        full = pydicom.dcmread(path)
        name = str(frames[0].header.PatientName)
    assert skipped == [] and len(frames) == 1
    assert name == str(full.PatientName) and not name.isascii()
    assert load(path).shape == (1, 32, 32)


# --------------------------------------------------------------------------------------
# errors of medlab.load
# --------------------------------------------------------------------------------------


@needs("wg04-modalities")
def test_load_of_a_folder_with_several_images_lists_them():
    root = dataset("wg04-modalities")
    with pytest.raises(MultipleImagesError) as err:
        load(root)
    ids = list(load_all(root))
    assert sorted(err.value.ids) == sorted(ids) and len(ids) == 10
    msg = str(err.value)
    assert "holds 10 images" in msg and "medlab.io.load_all" in msg
    assert all(i in msg for i in ids)


def test_load_of_a_missing_path_names_it(tmp_path):
    missing = tmp_path / "no" / "such.dcm"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        medlab.load(missing)
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        medlab.io.load_all(missing)


def test_load_of_a_non_dicom_file_names_the_formats(tmp_path):
    path = tmp_path / "report.pdf"
    path.write_bytes(b"%PDF-1.4\n" + bytes(300))
    with pytest.raises(MedlabError, match=r"cannot tell the format of .*report\.pdf.*not DICOM.*"
                                          r"NIfTI, NRRD or MetaImage"):
        medlab.load(path)
    col = load_all(path)
    assert len(col) == 0 and re.search(NOT_DICOM, col.skipped["reason"][0])


@needs("pydicom-testfiles")
def test_load_of_a_non_image_dicom_says_why(tmp_path):
    path = dataset("pydicom-testfiles") / "rtstruct.dcm"
    with pytest.raises(DicomReadError, match=r"no image could be loaded from .*rtstruct\.dcm.*"
                                             r"modality RTSTRUCT.*not an image"):
        load(path)


def test_empty_folder_says_so(tmp_path):
    with pytest.raises(DicomReadError, match="no DICOM files"):
        load(tmp_path)
