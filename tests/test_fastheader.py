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


# ------------------------------------------------------------ reading like the previous file
def _header_fields(fh):
    if fh is None:
        return None
    return (fh.values, fh.seen, fh.transfer_syntax, fh.implicit, fh.pixel_offset,
            fh.pixel_length, fh.pixel_vr, fh.items)


def test_header_reader_gives_the_full_walk_on_every_file():
    """In the order a scan reads them (sorted paths: the files of a series together),
    HeaderReader reads most files by comparison with the previous one, and each header
    equals read_fast_header's (itself checked against pydicom above)."""
    from medlab.io.dicom._fastheader import HeaderReader

    reader = HeaderReader(TAGS, items=ITEM_SEQUENCES)
    reused = 0
    for path in FILES:
        fh = reader.read(path)
        assert _header_fields(fh) == _header_fields(
            read_fast_header(path, TAGS, items=ITEM_SEQUENCES)), path
        if fh is not None and fh.base is not None:
            reused += 1
            changed = {t for t in fh.values if fh.values[t] != fh.base.values[t]}
            assert changed <= fh.changed, path  # the changed values are all named
    assert reused > 0.5 * len(FILES)


def test_header_reader_reused_headers_agree_with_pydicom():
    """A header read by comparison holds the new file's values, as pydicom reads them."""
    from medlab.io.dicom._fastheader import HeaderReader

    root = ml.data.fetch("sts-cohort", progress=False)
    files = sorted((root / "dicom" / "STS_002" / "PET" / "image").iterdir())[:40]
    reader = HeaderReader(TAGS)
    n = 0
    for path in files:
        fh = reader.read(path)
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if fh.base is None:
            continue
        n += 1
        for tag in TAGS:
            raw = ds._dict.get(Tag(tag))
            if isinstance(raw, pydicom.dataelem.RawDataElement):
                assert fh.values[tag][0] == raw.value, (path.name, hex(tag))
    assert n >= 30


def _series_file(tmp_path, name, *, sop="1.2.3.4.5", position=(0.0, 0.0, 5.0), rows=8,
                 uid="1.2.3.4", modality="CT"):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop
    ds.Modality, ds.SeriesInstanceUID = modality, uid
    ds.InstanceNumber = 1
    ds.ImagePositionPatient = [f"{v:g}" for v in position]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.Rows = ds.Columns = rows
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = bytes(2 * rows * rows)
    path = tmp_path / name
    ds.save_as(path, enforce_file_format=True)
    return path


def test_header_reader_on_changing_layouts(tmp_path):
    """UIDs of another length, a file of another series in between, a value that changes
    length, an element head that changes, a file cut short: each header is the full walk's."""
    from medlab.io.dicom._fastheader import HeaderReader

    paths = [
        _series_file(tmp_path, "a1", sop="1.2.3.4.11", position=(0, 0, 1)),
        _series_file(tmp_path, "a2", sop="1.2.3.4.12", position=(0, 0, 2)),  # same layout
        _series_file(tmp_path, "a3", sop="1.2.3.4.100", position=(0, 0, 3)),  # longer UID
        _series_file(tmp_path, "b1", sop="1.2.3.4.101", uid="9.8", modality="MR"),  # other series
        _series_file(tmp_path, "a4", sop="1.2.3.4.102", position=(0, 0, 4)),
        _series_file(tmp_path, "a5", sop="1.2.3.4.103", position=(0, 0, 100.5)),  # longer IPP
        _series_file(tmp_path, "a6", sop="1.2.3.4.104", position=(0, 0, 101.5)),
        _series_file(tmp_path, "a7", sop="1.2.3.4.105", position=(0, 0, 102.5), rows=4),
    ]
    # a file of the same layout whose Rows element head says another VR (US -> SS)
    blob = bytearray(paths[-1].read_bytes())
    at = blob.index(b"\x28\x00\x10\x00US")
    blob[at + 4 : at + 6] = b"SS"
    (tmp_path / "a8").write_bytes(bytes(blob))
    paths.append(tmp_path / "a8")
    (tmp_path / "a9").write_bytes(paths[-2].read_bytes()[:200])  # cut inside the header
    paths.append(tmp_path / "a9")
    reader = HeaderReader(TAGS)
    reused = []
    for path in paths:
        fh = reader.read(path)
        assert _header_fields(fh) == _header_fields(read_fast_header(path, TAGS)), path.name
        reused.append(fh is not None and fh.base is not None)
    # a2 like a1, a4 like a3 (the reader keeps the layouts of the last files it walked, so
    # b1 in between does not matter), a6 like a5; a7's pixel data have another length, a8
    # another element head
    assert reused == [False, True, False, False, True, False, True, False, False, False]
    sop, pos = int(Tag("SOPInstanceUID")), int(Tag("ImagePositionPatient"))
    reader = HeaderReader(TAGS | {sop})
    reader.read(paths[5])
    fh = reader.read(paths[6])  # a6 like a5: the values that differ are named
    assert fh.base is not None and fh.base.values[sop][0] == b"1.2.3.4.103\0"
    assert fh.changed == {pos, sop}
    assert fh.values[pos][0].rstrip(b" ") == b"0\\0\\101.5"
    assert fh.values[sop][0] == b"1.2.3.4.104\0"


def test_header_reader_keeps_several_layouts(tmp_path):
    """UIDs of two lengths in turn (a scanner's 1.2...9, 1.2...10 in a shuffled folder) and
    two series interleaved: after the first file of each layout, every header is read by
    comparison with its own layout's, and equals the full walk."""
    from medlab.io.dicom._fastheader import HeaderReader

    paths = []
    for k in range(12):
        sop = f"1.2.3.4.{'555' if k % 2 else '5'}.{k + 10}"  # two (even) lengths in turn
        uid, modality = ("1.2.3.4", "CT") if k % 3 else ("9.8.7", "MR")  # two series
        paths.append(_series_file(tmp_path, f"f{k:02d}", sop=sop, position=(0, 0, k + 10),
                                  uid=uid, modality=modality))
    reader = HeaderReader(TAGS)
    walked = 0
    for path in paths:
        fh = reader.read(path)
        assert _header_fields(fh) == _header_fields(read_fast_header(path, TAGS)), path.name
        walked += fh.base is None
    assert walked == 4  # one per (UID length, series) pair
    # the frame stage keeps a frame per layout too: each file's frame is its own
    from medlab.io.dicom.frames import FastFrames, fast_frames
    from medlab.io.dicom.header import FAST_TAGS

    reader, stage, patched = HeaderReader(FAST_TAGS), FastFrames(), 0
    for path in paths:
        fh = reader.read(path)
        got = stage(fh, path)
        assert got == fast_frames(read_fast_header(path, FAST_TAGS), path), path.name
        patched += fh.base is not None
    assert patched == len(paths) - 4
