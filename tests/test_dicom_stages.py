"""The DICOM stages (header -> frames -> plans -> pixels) as one pipeline (issue 14).

- ``Index.load_series`` plans a series from the frames the index stored and gives the
  Image ``medlab.load`` gives for the series' folder (real CT, MR and PET), without
  reading the files' headers again; a file changed since indexing is read from disk
  again (with a warning), so the result is still what ``medlab.load`` gives;
- ``medlab.load`` refuses a folder of several images from the plan, before any pixel
  is decoded;
- a frame stored as text comes back equal, for every frame of the shared data;
- the value converters agree with pydicom's own conversions.
"""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pydicom
import pytest
from pydicom.datadict import dictionary_VR

import medlab as ml
import medlab.io.dicom as dicom
from medlab.errors import MultipleImagesError
from medlab.io.dicom import frames as frame_stage
from medlab.io.dicom import pixels as pixel_stage
from medlab.io.dicom import values

SERIES = {"CT": "dicom/STS_002/CT/image", "MR": "dicom/STS_002/MR_T1/image",
          "PET": "dicom/STS_002/PET/image"}


@pytest.fixture(scope="module")
def sts002_index():
    root = ml.data.path("sts-cohort", "dicom/STS_002")
    with ml.cohort.scan(root, progress=False, workers=1) as idx:
        yield idx


def _uid(folder) -> str:
    first = sorted(folder.iterdir())[0]
    return str(pydicom.dcmread(first, stop_before_pixels=True).SeriesInstanceUID)


def _assert_same_image(got: ml.Image, ref: ml.Image) -> None:
    assert got.array.dtype == ref.array.dtype and got.shape == ref.shape
    np.testing.assert_array_equal(got.array, ref.array)
    np.testing.assert_array_equal(got.affine, ref.affine)
    assert got.meta.keys() == ref.meta.keys()
    for key, value in ref.meta.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(got.meta[key], value)
        else:
            assert got.meta[key] == value, key
    assert got.frame_times_s is None if ref.frame_times_s is None else \
        np.array_equal(got.frame_times_s, ref.frame_times_s)


@pytest.mark.parametrize("modality", list(SERIES))
def test_load_series_gives_the_image_load_gives(sts002_index, modality, monkeypatch):
    folder = ml.data.path("sts-cohort", SERIES[modality])
    ref = ml.load(folder, progress=False)
    uid = _uid(folder)
    # no header of the series is parsed by the header stage again, and pydicom parses
    # at most the header of the first frame of the plan (labels, metadata): not every file
    def no_scan(*args, **kwargs):
        raise AssertionError("load_series read the headers again")

    monkeypatch.setattr(dicom, "file_frames", no_scan)
    parsed = []
    real_dcmread = pydicom.dcmread
    monkeypatch.setattr(pydicom, "dcmread", lambda *a, **k: parsed.append(a[0]) or
                        real_dcmread(*a, **k))
    img = sts002_index.load_series(uid)
    n_files = len(list(folder.iterdir()))
    assert n_files > 20 and 1 <= len(set(parsed)) <= 2
    _assert_same_image(img, ref)
    assert img.meta["modality"] == {"PET": "PT"}.get(modality, modality)


def test_a_file_changed_since_indexing_is_read_again(tmp_path):
    src = ml.data.path("sts-cohort", SERIES["MR"])
    folder = tmp_path / "mr"
    shutil.copytree(src, folder)
    idx = ml.cohort.scan(folder, progress=False, workers=1)
    uid = _uid(folder)
    before = idx.load_series(uid)
    # change a file: other pixel values, another rescale intercept (same size on disk)
    changed = sorted(folder.iterdir())[5]
    ds = pydicom.dcmread(changed)
    ds.RescaleIntercept = 100
    arr = ds.pixel_array
    arr[:10] = 7
    ds.PixelData = arr.tobytes()
    ds.save_as(changed)
    with pytest.warns(UserWarning, match=r"1 file\(s\) of series .* changed since they were "
                                         r"indexed .*index\.rescan\(\)"):
        after = idx.load_series(uid)
    _assert_same_image(after, ml.load(folder, progress=False))
    assert not np.array_equal(after.array, before.array)
    # once rescanned, the stored frames are used again, and give the same image
    idx.rescan(progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _assert_same_image(idx.load_series(uid), after)
    idx.close()


def test_several_images_are_refused_before_any_pixel_is_decoded(tmp_path, monkeypatch):
    for name in ("CT", "MR"):
        for f in sorted(ml.data.path("sts-cohort", SERIES[name]).iterdir())[:3]:
            shutil.copy(f, tmp_path / f"{name}-{f.name}")

    def no_pixels(*args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(pixel_stage, "read_pixels", no_pixels)
    monkeypatch.setattr(pixel_stage, "image_from_plan", no_pixels)
    with pytest.raises(MultipleImagesError, match="holds 2 images") as err:
        ml.load(tmp_path, progress=False)
    assert len(err.value.ids) == 2
    assert any("CT" in i or "S0" in i for i in err.value.ids)
    monkeypatch.undo()
    # and the two are what load_all gives
    assert sorted(ml.io.load_all(tmp_path, progress=False)) == sorted(err.value.ids)


DATASETS = ["sts-cohort", "dcm-qa-nih", "dcm-qa-enhanced", "dcm-qa-ts", "pydicom-testfiles",
            "pydicom-extra", "fo-dicom", "wg04-modalities", "breast-dce", "xa-mr-cine",
            "us-cine", "dcmqi"]


@pytest.mark.slow
def test_frame_records_give_the_frames_back():
    """Every frame of the shared data survives frame_record -> frame_from_record."""
    n = kinds = 0
    seen = set()
    for name in DATASETS:
        root = ml.data.fetch(name, progress=False)
        for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "SOURCE.txt"):
            frames, _ = frame_stage.file_frames(path)
            for f in frames:
                back = frame_stage.frame_from_record(path, frame_stage.frame_record(f))
                for field in f.__slots__:
                    if field == "_header":
                        continue
                    a, b = getattr(f, field), getattr(back, field)
                    if field == "scaling" and a and "lut" in a:
                        np.testing.assert_array_equal(a["lut"][1], b["lut"][1])
                        assert a["lut"][1].dtype == b["lut"][1].dtype and a["lut"][0] == b["lut"][0]
                        a, b = {**a, "lut": None}, {**b, "lut": None}
                    assert a == b and type(a) is type(b), (path, field, a, b)
                n += 1
                seen.add((f.index is not None, f.tile is not None, bool(f.scaling)))
    kinds = len(seen)
    # single-frame, multi-frame, mosaic tiles and frames with extra scalings all took part
    assert n > 1500 and kinds >= 4, (n, seen)


def test_values_agree_with_pydicom():
    path = sorted(ml.data.path("sts-cohort", SERIES["PET"]).iterdir())[0]
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    for kw, conv, want in [
        ("ImagePositionPatient", values.to_floats, [float(v) for v in ds.ImagePositionPatient]),
        ("PixelSpacing", values.to_float, float(ds.PixelSpacing[0])),
        ("InstanceNumber", values.to_int, int(ds.InstanceNumber)),
        ("SeriesDescription", values.to_str, str(ds.SeriesDescription).strip() or None),
        ("Rows", values.to_int, int(ds.Rows)),
    ]:
        elem = pydicom.dcmread(path, stop_before_pixels=True)  # raw, not yet converted
        raw = elem.get_item(kw)
        vr = raw.VR or dictionary_VR(kw)  # implicit VR: the dictionary's, as the fast reader
        got = conv(values.split(raw.value, vr))
        assert got == want, kw
        assert values.pydicom_like(raw.value, vr) == ds[kw].value or kw == "SeriesDescription"
    assert values.to_int("3.0") == 3 and values.to_int("3.5") is None
    assert values.to_int(str(2**31)) is None  # does not fit a 32-bit column
    assert values.to_float("nan") is None and values.to_floats("1\\x") is None
    assert values.to_str(" a \\ b ") == "a\\b" and values.to_str("  \x00") is None
    assert values.split(b"\x01\x00\x02\x00", "US") == [1, 2]
    assert values.parse_date("2020.05.01").isoformat() == "2020-05-01"


# ------------------------------------------------- frames of a series' files, reused
def _reused_frames(paths):
    """(FastFrames' frames, fast_frames' frames, how many were reused) of ``paths``, read in
    this order with one HeaderReader."""
    from medlab.io.dicom.header import FAST_TAGS, HeaderReader, read_fast_header

    reader, stage = HeaderReader(FAST_TAGS), frame_stage.FastFrames()
    got, expected, reused = [], [], 0
    for path in paths:
        fh = reader.read(path)
        got.append(stage(fh, path))
        expected.append(frame_stage.fast_frames(read_fast_header(path, FAST_TAGS), path))
        reused += fh is not None and fh.base is not None and got[-1] is not None
    return got, expected, reused


def test_reused_frames_are_the_frames_of_the_file():
    """CT, MR and PET series (positions, instance numbers, times and PET rescale slopes that
    change from file to file) and a folder of odd files: the frames of each file, reused
    from the previous file's or not, equal those fast_frames reads for it alone."""
    paths = []
    root = ml.data.fetch("sts-cohort", progress=False) / "dicom" / "STS_002"
    for series in ("CT/image", "MR_T1/image", "PET/image"):
        paths += sorted((root / series).iterdir())
    paths += sorted(p for p in ml.data.fetch("pydicom-testfiles", progress=False).rglob("*")
                    if p.is_file())
    got, expected, reused = _reused_frames(paths)
    assert got == expected
    assert reused > 0.6 * sum(f is not None for f in got) > 100
    slopes = {f[0].slope for f in got if f is not None and f[0].split_key[0] == "PT"}
    assert len(slopes) > 10  # the PET slices' own rescale slopes
    # their records (texts kept from the previous frame for the values it shares) are
    # the JSON of all fields
    import json

    for frames in got:
        for f in frames or ():
            plain = {name: getattr(f, name) for name in frame_stage._FIELDS}
            assert frame_stage.frame_record(f) == json.dumps(
                plain, default=frame_stage._plain, allow_nan=True)


def test_reused_frames_recompute_what_changed(tmp_path):
    """Files of one layout whose frames differ in a value read but not patched (pixel
    spacing), in patched values (slope, time), and without a Series UID (one per file)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    paths = []
    for k, (spacing, slope, time) in enumerate([("0.5", "1.0", "101010"), ("0.5", "2.0", "101011"),
                                                ("0.7", "2.0", "101012"), ("0.7", "2.0", "101012"),
                                                ("0.7", "0.0", "101013")]):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.3.{k}"
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = CTImageStorage, f"1.2.3.{k}", "CT"
        ds.InstanceNumber = k + 1
        ds.AcquisitionDate, ds.AcquisitionTime = "20240101", time
        ds.ImagePositionPatient = [0, 0, k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [spacing, spacing]
        ds.RescaleSlope, ds.RescaleIntercept = slope, "-1024"
        ds.Rows = ds.Columns = 4
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = bytes(32)
        ds.save_as(tmp_path / f"f{k}.dcm", enforce_file_format=True)
        paths.append(tmp_path / f"f{k}.dcm")
    got, expected, reused = _reused_frames(paths)
    assert got == expected and reused == 4
    assert [f[0].pixel_spacing for f in got] == [(0.5, 0.5)] * 2 + [(0.7, 0.7)] * 3
    assert [f[0].slope for f in got] == [1.0, 2.0, 2.0, 2.0, 1.0]  # slope 0 reads as 1
    assert [f[0].series_uid for f in got] == [f"file:{p}" for p in paths]
    assert len({f[0].time_s for f in got}) == 4


def test_frames_reused_across_the_series_of_one_layout(tmp_path, monkeypatch):
    """Series whose files share one header layout (a scanner's series: same tags, values of
    the same lengths) but differ in series values (UID, number, thickness, spacing): the
    first file of each series is computed in full, the others patched from it — also when
    a series comes back after another, and when a value that is not a per-file value
    changes within a series — and every frame equals what fast_frames reads alone."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    def write(name, series, k, spacing):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.3.{series}.{k + 10}"
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID, ds.Modality = CTImageStorage, "CT"
        ds.SOPInstanceUID = f"1.2.3.{series}.{k + 10}"
        ds.SeriesInstanceUID, ds.SeriesNumber = f"1.2.4.{series}", series
        ds.SliceThickness = f"{series}.5"
        ds.InstanceNumber = k + 10
        ds.ImagePositionPatient = [0, 0, k + 10 * series]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [spacing, spacing]
        ds.Rows = ds.Columns = 4
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = bytes(32)
        ds.save_as(tmp_path / name, enforce_file_format=True)
        return tmp_path / name

    paths = [write(f"s{s}_{k}.dcm", s, k, "0.8" if s == 3 and k >= 2 else f"0.{s + 4}")
             for s in (1, 2, 3) for k in range(5)]
    paths += [write(f"s1_{k}.dcm", 1, k, "0.5") for k in range(5, 8)]  # series 1 again
    computed = []
    full = frame_stage.frames_from_dataset

    def counted(ds, path, **kwargs):
        computed.append(path.name)
        return full(ds, path, **kwargs)

    monkeypatch.setattr(frame_stage, "frames_from_dataset", counted)
    got, expected, reused = _reused_frames(paths)
    assert got == expected and all(f is not None for f in got) and reused == len(paths) - 1
    # fast_frames computes every file for `expected`: FastFrames' own are the first of
    # each series and the spacing change in series 3 (not the files of series 1 that
    # come back after series 2 and 3)
    own = [n for n in computed if computed.count(n) == 2]
    assert sorted(set(own)) == ["s1_0.dcm", "s2_0.dcm", "s3_0.dcm", "s3_2.dcm"]
    assert [f[0].slice_thickness for f in got] == [1.5] * 5 + [2.5] * 5 + [3.5] * 5 + [1.5] * 3
    assert [f[0].pixel_spacing for f in got][10:15] == [(0.7, 0.7)] * 2 + [(0.8, 0.8)] * 3
    assert [f[0].series_uid for f in got][-3:] == ["1.2.4.1"] * 3
