"""The fast header reader agrees with pydicom on every file it accepts."""

from __future__ import annotations

import warnings

import pydicom
import pytest
from pydicom.tag import Tag

import medlab as ml
from medlab.io.dicom._fastheader import PIXEL_DATA, read_fast_header

DATASETS = ["sts-cohort", "dcm-qa-nih", "dcm-qa-orientation", "dcm-qa-table", "dcm-qa-ts",
            "dcm-qa-enhanced", "dcm-qa-12bit", "pydicom-testfiles", "pydicom-extra", "fo-dicom",
            "wg04-modalities", "wg04-codecs", "breast-dce", "xa-mr-cine", "us-cine", "dcmqi",
            "ibsi1-ct-phantom"]
TAGS = frozenset(int(Tag(k)) for k in (
    "SeriesInstanceUID", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
    "Rows", "Columns", "BitsAllocated", "BitsStored", "PixelRepresentation", "RescaleSlope",
    "RescaleIntercept", "InstanceNumber", "ImageType", "Modality", "SamplesPerPixel",
    "NumberOfFrames", "PhotometricInterpretation", "AcquisitionTime"))

PYDICOM_INCOMPLETE = {"emri_small_jpeg_2k_lossless_too_short.dcm"}


def _files():
    out = []
    for name in DATASETS:
        root = ml.data.fetch(name, progress=False)
        out += [p for p in sorted(root.rglob("*")) if p.is_file() and p.name != "SOURCE.txt"]
    return out


FILES = _files()


def test_reader_accepts_most_files():
    accepted = sum(read_fast_header(p, TAGS) is not None for p in FILES)
    assert accepted > 0.8 * len(FILES)


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_agrees_with_pydicom(path):
    fh = read_fast_header(path, TAGS)
    if fh is None:
        return  # declined: the loader uses pydicom for this file (big endian, no preamble, ...)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, defer_size=256, force=True)
    assert fh.transfer_syntax == str(ds.file_meta.TransferSyntaxUID)
    for tag in TAGS:
        raw = ds._dict.get(Tag(tag))
        if raw is None:
            # pydicom gives up on this truncated file's encapsulated pixel data and drops
            # elements it had read; ours keeps them (the decode fails later, clearly)
            if path.name not in PYDICOM_INCOMPLETE:
                assert tag not in fh.values, hex(tag)
            continue
        value = raw.value if isinstance(raw, pydicom.dataelem.RawDataElement) else None
        if value is None:  # deferred or already converted by pydicom: compare decoded values
            continue
        assert fh.values[tag][0] == value, hex(tag)
    if PIXEL_DATA in ds._dict:
        raw = ds.get_item(PIXEL_DATA, keep_deferred=True)
        assert fh.pixel_offset == raw.value_tell
        if raw.length != 0xFFFFFFFF:
            assert fh.pixel_length == raw.length
    # typed accessors agree with pydicom's own conversions
    if "Rows" in ds:
        assert fh.us(int(Tag("Rows"))) == ds.Rows
    if "ImagePositionPatient" in ds and ds.ImagePositionPatient:
        assert fh.numbers(int(Tag("ImagePositionPatient"))) == pytest.approx(
            [float(v) for v in ds.ImagePositionPatient])


#: sequences whose first item the reader can keep (the PET fields of the cohort index live in
#: the first; the others exercise nested, defined- and undefined-length items across the data)
ITEM_SEQUENCES = frozenset(int(Tag(k)) for k in (
    "RadiopharmaceuticalInformationSequence", "ReferencedImageSequence", "SourceImageSequence",
    "ProcedureCodeSequence", "AnatomicRegionSequence", "ReferencedStudySequence",
    "RequestAttributesSequence", "ReferencedPerformedProcedureStepSequence"))


def test_first_items_found_in_the_data():
    """The shared data hold PET files with the sequence, all accepted by the reader."""
    radio = int(Tag("RadiopharmaceuticalInformationSequence"))
    kept = [p for p in FILES if (fh := read_fast_header(p, TAGS, items=ITEM_SEQUENCES))
            is not None and radio in fh.items]
    assert len(kept) >= 200  # the sts-cohort PET slices (and dcmqi's PET)
    assert all(fh.items[radio] for fh in (read_fast_header(p, TAGS, items=ITEM_SEQUENCES)
                                          for p in kept[:20]))


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_first_items_agree_with_pydicom(path):
    fh = read_fast_header(path, TAGS, items=ITEM_SEQUENCES)
    if fh is None:
        return
    plain = read_fast_header(path, TAGS)
    # asking for items changes nothing else
    assert (fh.values, fh.seen, fh.pixel_offset) == (plain.values, plain.seen, plain.pixel_offset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    for seq_tag in ITEM_SEQUENCES:
        elem = ds.get(Tag(seq_tag))
        if elem is None or elem.VR != "SQ":
            # absent, or a sequence encoded as UN: not kept (the caller then uses pydicom)
            assert seq_tag not in fh.items
            continue
        if not elem.value:
            assert fh.items.get(seq_tag) == {}
            continue
        item = elem.value[0]
        got = fh.items[seq_tag]
        expected = {}
        for tag in list(item._dict):
            raw = item._dict[tag]
            if isinstance(raw, pydicom.dataelem.RawDataElement):
                if raw.VR == "SQ" or raw.value is None or len(raw.value) > 64 * 1024:
                    continue
                expected[int(tag)] = raw.value
            elif item[tag].VR != "SQ":
                expected[int(tag)] = None  # already converted by pydicom: check presence only
        assert set(got) >= {t for t, v in expected.items() if v is not None}, path.name
        for tag, value in expected.items():
            if value is not None:
                assert got[tag][0] == value, (path.name, hex(seq_tag), hex(tag))
