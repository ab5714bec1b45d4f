"""DICOM series assembly on synthetic series with known geometry: all 48
orientations (checked against SimpleITK too), gantry tilt, missing slices,
uneven spacing, mixed series, stored-bit garbage."""

from __future__ import annotations

import warnings

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from helpers import write_dicom_series

import medlab as ml
from medlab import geometry as geo
from medlab.errors import MultipleImagesError, SeriesAssemblyError

DIRECTIONS = geo.axis_aligned_directions()


def _volume(shape=(5, 6, 7), seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(-1000, 3000, size=shape).astype(np.int16)


@pytest.mark.parametrize("d", range(48), ids=[f"dir{i:02d}" for i in range(48)])
def test_all_orientations_against_known_affine_and_simpleitk(d, tmp_path):
    direction = DIRECTIONS[d]
    data = _volume()
    step = direction[:, 0] * 2.5
    iop = (*direction[:, 2], *direction[:, 1])  # row direction = column axis, and so on
    _, written = write_dicom_series(tmp_path, data + 1024, iop=iop, slice_step=step,
                                    origin=(-30.0, 12.0, 7.5))
    img = ml.load(tmp_path, progress=False)
    normal = np.cross(iop[:3], iop[3:])
    expect_arr, expect_aff = data, written
    if step @ normal < 0:  # loaders stack along +normal: the slice axis comes out reversed
        expect_arr = data[::-1]
        expect_aff = written.copy()
        expect_aff[:3, 3] = geo.apply_affine(written, [data.shape[0] - 1, 0, 0])
        expect_aff[:3, 0] *= -1
    np.testing.assert_allclose(img.affine, expect_aff, atol=1e-5)
    np.testing.assert_array_equal(img.array, expect_arr)
    assert img.dtype == np.int16
    # independent reader
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path)))
    ref = ml.Image.from_simpleitk(reader.Execute())
    np.testing.assert_allclose(img.affine, ref.affine, atol=1e-4)
    np.testing.assert_array_equal(img.array, ref.array)


def test_gantry_tilt_gives_sheared_affine_matching_positions(tmp_path):
    tilt = np.deg2rad(20)
    step = np.array([0.0, np.sin(tilt), np.cos(tilt)]) * 3.0  # along z, tilted towards P
    data = _volume((6, 8, 9))
    paths, _ = write_dicom_series(tmp_path, data + 1024, slice_step=step)
    img = ml.load(tmp_path, progress=False)
    assert img.meta["gantry_tilt_deg"] == pytest.approx(20, abs=1e-3)
    assert not geo.is_orthogonal(img.affine)
    # every slice's first voxel lies exactly at its file's ImagePositionPatient
    for p in paths:
        ds = pydicom.dcmread(p)
        k = int(np.argmin([abs(img.index_to_world([k, 0, 0])[2] - float(ds.ImagePositionPatient[2]))
                           for k in range(img.spatial_shape[0])]))
        np.testing.assert_allclose(img.index_to_world([k, 0, 0]),
                                   [float(v) for v in ds.ImagePositionPatient], atol=1e-4)
        np.testing.assert_array_equal(img.array[k], ds.pixel_array.astype(np.int16) - 1024)
    shape, grid = img.orthogonal_grid()
    assert geo.is_orthogonal(grid)
    assert img.resample_to((shape, grid)).to_simpleitk().GetSize()[::-1] == shape


def test_missing_slice_is_reported_not_stacked(tmp_path):
    data = _volume((8, 4, 4))
    positions = [np.array([0.0, 0.0, 2.0 * k]) for k in range(8)]
    keep = [k for k in range(8) if k != 4]
    write_dicom_series(tmp_path, data[keep], positions=[positions[k] for k in keep])
    with pytest.raises(SeriesAssemblyError, match=r"1 missing slice.*spacing is 2 mm.*4 mm.*irregular='stack'"):
        ml.load(tmp_path, progress=False)
    images = ml.io.load_all(tmp_path, progress=False)
    assert len(images) == 0 and images.skipped["reason"].str.contains("missing slice").any()
    with pytest.warns(UserWarning, match="missing slice"):
        img = ml.load(tmp_path, irregular="stack", progress=False)
    assert img.shape[0] == 7 and "missing slice" in img.meta["geometry_warning"]


def test_uneven_spacing_is_reported(tmp_path):
    zs = [0.0, 2.0, 4.0, 6.7, 8.0, 10.0]
    write_dicom_series(tmp_path, _volume((6, 4, 4)), positions=[np.array([0, 0, z]) for z in zs])
    with pytest.raises(SeriesAssemblyError, match=r"uneven slice spacing: steps range from 1.3 to 2.7 mm"):
        ml.load(tmp_path, progress=False)


def test_mixed_orientation_series_is_split_and_named(tmp_path):
    uid = pydicom.uid.generate_uid()
    write_dicom_series(tmp_path / "ax", _volume((4, 5, 5)), series_uid=uid)
    write_dicom_series(tmp_path / "cor", _volume((3, 5, 5), seed=1), series_uid=uid,
                       iop=(1, 0, 0, 0, 0, -1), slice_step=(0, 3.0, 0))
    with pytest.raises(MultipleImagesError, match=r"2 images.*AX.*COR.*load_all") as err:
        ml.load(tmp_path, progress=False)
    images = ml.io.load_all(tmp_path, progress=False)
    assert sorted(images) == sorted(err.value.ids)
    assert sorted(img.shape for img in images.values()) == [(3, 5, 5), (4, 5, 5)]


@pytest.mark.parametrize(("signed", "bits", "garbage"), [(False, 12, 0xF000), (True, 12, 0xF000),
                                                          (False, 10, 0xFC00)])
def test_bits_stored_garbage_is_masked_like_pydicom(signed, bits, garbage, tmp_path):
    rng = np.random.default_rng(3)
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1)) if signed else (0, 2**bits)
    data = rng.integers(lo, hi, size=(4, 6, 6))
    paths, _ = write_dicom_series(tmp_path, data, bits_stored=bits, signed=signed,
                                  intercept=0, high_bits=garbage, shuffle=False)
    img = ml.load(tmp_path, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = np.stack([pydicom.dcmread(p).pixel_array for p in paths])
    np.testing.assert_array_equal(img.array, ref)
    np.testing.assert_array_equal(img.array, data)


def test_float_rescale_and_integer_rescale_dtypes(tmp_path):
    data = np.arange(2 * 3 * 3, dtype=np.int16).reshape(2, 3, 3)
    write_dicom_series(tmp_path / "f", data, slope=0.5, intercept=1.25, modality="MR")
    img = ml.load(tmp_path / "f", progress=False)
    assert img.dtype == np.float32
    np.testing.assert_allclose(img.array, data * 0.5 + 1.25)
    write_dicom_series(tmp_path / "i", data + 5000, signed=False, intercept=-1024)
    img = ml.load(tmp_path / "i", progress=False)
    assert img.dtype.kind == "i" and img.dtype.itemsize == 2
    np.testing.assert_array_equal(img.array, data + 5000 - 1024)


def test_corrupt_file_among_good_ones_is_listed_and_source_untouched(tmp_path):
    write_dicom_series(tmp_path, _volume((5, 4, 4)))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "broken").write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff")
    before = {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    images = ml.io.load_all(tmp_path, progress=False)
    assert len(images) == 1
    reasons = dict(zip(images.skipped["path"].map(lambda s: s.rsplit("/", 1)[-1]),
                       images.skipped["reason"], strict=True))
    assert reasons["notes.txt"].startswith("notes.txt: not a DICOM file")
    assert "broken" in reasons
    after = {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    assert after == before
