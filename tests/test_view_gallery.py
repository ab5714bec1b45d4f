"""The series gallery (medlab.view._gallery) on real data: which series it lists,
thumbnails against independently loaded volumes, selection and loading, no
patient identifiers by default, bad files as placeholder tiles, MONOCHROME1,
colour cines, the static snapshot, and the front-end's click handling."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import medlab as ml
from medlab.view._gallery import Gallery, gallery
from medlab.view._gallery_tiles import _middle_frame, _series_frames, series_thumbnail

IMAGE_MODALITIES = {"CT", "MR", "PT"}


@pytest.fixture(scope="module")
def sts_index():
    return ml.cohort.scan(ml.data.fetch("sts-cohort", progress=False), progress=False)


@pytest.fixture(scope="module")
def sts_gallery(sts_index):
    return gallery(sts_index, progress=False)


def _png_pixels(png: bytes) -> np.ndarray:
    from PIL import Image as PILImage

    return np.asarray(PILImage.open(io.BytesIO(png)).convert("RGB"))


def _figure_texts(fig) -> str:
    from matplotlib.text import Text

    return "\n".join(t.get_text() for t in fig.findobj(Text))


# --------------------------------------------------------------------------- listing
def test_lists_every_image_series_of_the_index(sts_index, sts_gallery):
    table = sts_index.series
    expected = table[table["modality"].isin(IMAGE_MODALITIES)]["series_uid"].tolist()
    assert len(expected) == 15  # 5 patients x CT, MR, PET; the 15 RTSTRUCTs are not images
    assert [t.series_uid for t in sts_gallery.tiles] == expected  # the index's order
    assert list(sts_gallery.series["series_uid"]) == expected
    assert all(t.kind == "image" and t.problem is None for t in sts_gallery.tiles)
    # the widget carries one tile per series, each with a PNG
    state = sts_gallery._grid.tiles
    assert len(state) == 15 and all(s["src"].startswith("data:image/png;base64,") for s in state)
    assert "15 series" in sts_gallery._header.value and "15 of the 30" in sts_gallery._header.value

    everything = gallery(sts_index, modalities="all", progress=False)
    assert [t.series_uid for t in everything.tiles] == table["series_uid"].tolist()
    rt = gallery(sts_index, modalities=["rtstruct"], progress=False)
    assert len(rt.tiles) == 15 and {t.kind for t in rt.tiles} == {"text"}
    assert all(t.lines[0].endswith("RTSTRUCT #1") for t in rt.tiles)


def test_captions_describe_the_series(sts_index, sts_gallery):
    table = sts_index.series.set_index("series_uid")
    for tile in sts_gallery.tiles:
        row = table.loc[tile.series_uid]
        caption = "\n".join(tile.lines)
        assert row["modality"] in tile.lines[0]
        assert f"{row['n_instances']} images" in caption
        assert f"{row['n_slices']} × {row['rows']}×{row['columns']} px" in caption
        assert f"{row['pixel_spacing_row_mm']:.3g}×{row['pixel_spacing_col_mm']:.3g} mm" in caption
        assert f"{row['slice_spacing_mm']:.3g} mm slices" in caption
        # the description, with the patient's id replaced by the patient's display name
        label = ml.privacy.display_name(row["patient_id"])
        assert tile.lines[0].startswith(label)
        assert row["series_description"].replace(row["patient_id"], label) in tile.tooltip


# --------------------------------------------------------------------------- thumbnails
def test_thumbnails_are_the_windowed_middle_slice_of_the_loaded_volume(sts_index, sts_gallery):
    table = sts_index.series.set_index("series_uid")
    frames = _series_frames(sts_index)
    patient = table["patient_id"].iloc[0]
    for tile in sts_gallery.tiles:
        row = table.loc[tile.series_uid]
        if row["patient_id"] != patient:  # one patient's CT, MR and PET keep this short
            continue
        files = sts_index.files(tile.series_uid)
        folder = Path(files[0]).parent
        assert sorted(str(p) for p in folder.iterdir()) == sorted(files)  # one folder per series
        volume = ml.load(folder)
        n = volume.spatial_shape[0]
        assert n == row["n_slices"] > 10
        # the picked file lies at the centre of the loaded volume along the slice normal
        pick = _middle_frame(frames[frames["series_uid"] == tile.series_uid])
        k = float(volume.world_to_index(pick.position_mm)[0])
        assert abs(k - round(k)) < 1e-3 and abs(k - (n - 1) / 2) <= 0.5
        k = round(k)
        # full-resolution thumbnail == that slice of the volume, windowed with the default
        expected_slice = volume.array[k]
        one = volume.with_array(volume.array[k:k + 1])
        width, level = ml.view.resolve_window(one, None)
        if row["modality"] == "CT":
            assert (width, level) == ml.view.WINDOW_PRESETS["ct_soft_tissue"]
        expected = ml.view.apply_window(expected_slice, width, level)
        full = series_thumbnail(sts_index, tile.series_uid)
        assert full.shape == (row["rows"], row["columns"])
        np.testing.assert_allclose(full, expected, atol=1e-5)
        # the tile: longer side 128 px, physical aspect kept, not blank
        px = tile.pixels
        assert px.dtype == np.uint8 and max(px.shape) == 128
        aspect = (row["rows"] * row["pixel_spacing_row_mm"]) / (row["columns"] * row["pixel_spacing_col_mm"])
        assert px.shape[0] / px.shape[1] == pytest.approx(aspect, abs=0.02)
        assert px.std() > 20 and 10 < px.mean() < 245
        small = series_thumbnail(sts_index, tile.series_uid, size=128)
        np.testing.assert_array_equal(small, px)
        assert _png_pixels(tile.png)[..., 0].shape == px.shape


def test_window_per_modality(sts_index):
    ct = sts_index.series.query("modality == 'CT'")["series_uid"].iloc[0]
    lung = series_thumbnail(sts_index, ct, window={"CT": "ct_lung"})
    soft = series_thumbnail(sts_index, ct)
    assert not np.allclose(lung, soft)
    np.testing.assert_allclose(series_thumbnail(sts_index, ct, window=(1500, -600)), lung)


def test_monochrome1_thumbnail_is_inverted(tmp_path):
    src = ml.data.fetch("pydicom-testfiles", progress=False) / "dicomdirtests/77654033/CR1/6154"
    image = ml.load(src)
    assert image.meta["photometric"] == "MONOCHROME1" and image.meta["invert_display"]
    shutil.copy(src, tmp_path / "cr.dcm")
    g = gallery(tmp_path, progress=False)  # a folder: indexed in memory first
    (tile,) = g.tiles
    assert tile.kind == "image"
    width, level = ml.view.auto_window(image)
    stored = ml.view.apply_window(image.array[0], width, level)
    full = series_thumbnail(g.index, tile.series_uid)
    np.testing.assert_allclose(full, 1.0 - stored, atol=1e-6)
    assert stored.std() > 0.1  # so 1 - stored differs from stored


def test_colour_cine_shows_the_middle_frame_in_colour(tmp_path):
    src = ml.data.fetch("pydicom-testfiles", progress=False) / "examples_ybr_color.dcm"
    shutil.copy(src, tmp_path / "cine.dcm")
    g = gallery(tmp_path, progress=False)
    (tile,) = g.tiles
    assert "1 file, 30 frames" in "\n".join(tile.lines)
    cine = ml.load(src)
    assert cine.channels and cine.n_frames == 30
    full = series_thumbnail(g.index, tile.series_uid)
    expected = cine.frame(14).array[0].astype(np.float32) / 255  # (30 - 1) // 2
    assert full.shape == (240, 320, 3)
    np.testing.assert_allclose(full, expected, atol=1e-6)
    assert not np.allclose(full, cine.frame(0).array[0] / 255, atol=0.02)
    px = tile.pixels
    assert px.shape == (96, 128, 3)
    assert np.abs(px[..., 0].astype(int) - px[..., 2]).mean() > 1  # colour kept


# --------------------------------------------------------------------------- selection
def test_clicking_a_tile_selects_and_loads_its_series(sts_index):
    table = sts_index.series
    subset = table[table["modality"].isin(["MR", "PT"])]
    g = gallery(sts_index, series=subset, progress=False)
    assert [t.series_uid for t in g.tiles] == subset["series_uid"].tolist()
    assert isinstance(g, Gallery) and g.selected is None
    seen = []
    g.on_select(seen.append)
    changes = []
    g.observe(lambda change: changes.append(change["new"]), "selected")
    # what the front end does on a click: set the grid's selected_index and sync it
    g._grid.selected_index = 3
    uid = g.tiles[3].series_uid
    assert g.selected == uid and seen == [uid] and changes == [uid]
    assert g.selected_row["series_uid"] == uid
    row = table.set_index("series_uid").loc[uid]
    image = g.load()
    assert image.shape == (row["n_slices"], row["rows"], row["columns"])
    assert image.meta["series_uid"] == uid and image.meta["modality"] == row["modality"]
    assert "IBSI_1_" in g._details.value
    # selecting from Python moves the highlight in the front end
    g.selected = g.tiles[1].series_uid
    assert g._grid.selected_index == 1 and seen[-1] == g.tiles[1].series_uid
    with pytest.raises(Exception, match="not in this gallery"):
        g.selected = "1.2.3.4"
    g.on_select(seen.append, remove=True)
    g.selected = None
    assert g._grid.selected_index == -1 and len(seen) == 2
    with pytest.raises(ValueError, match="no series is selected"):
        g.load()


# --------------------------------------------------------------------------- privacy
def test_no_patient_identifiers_by_default(sts_index, sts_gallery):
    ids = set(sts_index.series["patient_id"].dropna()) | set(sts_index.series["patient_name"].dropna())
    assert ids >= {"STS_002", "STS_042"}
    sts_gallery.selected = sts_gallery.tiles[0].series_uid
    try:
        fig = sts_gallery.snapshot()
        shown = "\n".join([
            *("\n".join(t.lines) + "\n" + t.tooltip for t in sts_gallery.tiles),
            _figure_texts(fig),
            json.dumps(sts_gallery._grid.tiles),
            sts_gallery._header.value,
            sts_gallery._details.value,
            repr(sts_gallery),
        ])
    finally:
        sts_gallery.selected = None
    for pid in ids:
        assert pid.lower() not in shown.lower()
    # the one display rule: every patient by the pseudonym reports and exports use too
    for pid in set(sts_index.series["patient_id"].dropna()):
        assert ml.privacy.display_name(pid) in shown
    # with show_patient=True the ids are there (so the check above is meaningful)
    named = gallery(sts_index, series=sts_index.series.head(6), show_patient=True, progress=False)
    assert any("STS_002" in t.lines[0] for t in named.tiles)
    assert "STS_002" in _figure_texts(named.snapshot())


# --------------------------------------------------------------------------- bad files
def test_bad_files_give_placeholder_tiles_not_exceptions(tmp_path):
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import generate_uid

    # an MR series whose middle file (found here with pydicom) is cut short
    mr_src = ml.data.fetch("sts-cohort", progress=False) / "dicom/STS_025/MR_T1/image"
    mr = tmp_path / "mr"
    shutil.copytree(mr_src, mr)
    headers = [(p, pydicom.dcmread(p, stop_before_pixels=True)) for p in sorted(mr.iterdir())]
    iop = np.asarray(headers[0][1].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    order = sorted(headers, key=lambda h: float(np.dot(np.asarray(h[1].ImagePositionPatient,
                                                                  dtype=float), normal)))
    middle = order[(len(order) - 1) // 2][0]
    middle.write_bytes(middle.read_bytes()[: middle.stat().st_size - 2000])
    # a JPEG 2000 series of two files at the same position; the first's codestream is garbage
    codecs = ml.data.fetch("wg04-codecs", progress=False)
    j2k = tmp_path / "j2k"
    j2k.mkdir()
    series_uid = generate_uid()
    for name, corrupt in (("a_bad.dcm", True), ("b_good.dcm", False)):
        ds = pydicom.dcmread(codecs / "CT1_J2KR.dcm")
        ds.SeriesInstanceUID, ds.SOPInstanceUID = series_uid, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        if corrupt:
            data = bytearray(ds.PixelData)
            start = data.find(b"\xff\x4f\xff\x51")  # SOC + SIZ markers
            data[start:start + 64] = bytes(64)
            ds.PixelData = bytes(data)
        ds.save_as(j2k / name)
    # the same garbage alone in its series: nothing to show
    ds = pydicom.dcmread(j2k / "a_bad.dcm")
    ds.SeriesInstanceUID = generate_uid()
    ds.save_as(tmp_path / "j2k_alone.dcm")
    # a transfer syntax no installed decoder handles (MPEG-2): known from the index alone
    ds = pydicom.dcmread(ml.data.fetch("wg04-modalities", progress=False) / "CT2_UNC.dcm")
    ds.SeriesInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(200)])
    ds["PixelData"].VR = "OB"
    ds.save_as(tmp_path / "mpeg2.dcm")
    (tmp_path / "notes.txt").write_text("not DICOM")

    g = gallery(tmp_path, progress=False)
    index = g.index
    assert len(index.errors) == 1  # notes.txt
    by_uid = {t.series_uid: t for t in g.tiles}
    assert len(by_uid) == 4
    uid_of = {Path(index.files(u)[0]).parent.name if len(index.files(u)) > 1
              else Path(index.files(u)[0]).name: u for u in by_uid}
    mr_tile = by_uid[uid_of["mr"]]
    assert mr_tile.kind == "image" and "truncated" in mr_tile.problem
    assert "⚠ partly readable" in mr_tile.lines and mr_tile.pixels.std() > 20
    j2k_tile = by_uid[uid_of["j2k"]]
    assert j2k_tile.kind == "image" and "1 file(s) could not be read" in j2k_tile.problem
    alone = by_uid[uid_of["j2k_alone.dcm"]]
    assert alone.kind == "placeholder" and alone.pixels is None
    assert "JPEG 2000" in alone.problem and "corrupt" in alone.problem
    mpeg = by_uid[uid_of["mpeg2.dcm"]]
    assert mpeg.kind == "placeholder" and "MPEG2" in mpeg.problem.replace("-", "")
    assert "2 without a thumbnail" in g._header.value
    state = {s["tooltip"]: s for s in g._grid.tiles}
    assert all(s["src"] == "" and s["problem"] for s in state.values() if s["kind"] == "placeholder")
    # the snapshot draws placeholders with their reason; loading the bad series fails clearly
    texts = _figure_texts(g.snapshot())
    assert texts.count("no thumbnail") == 2
    g.selected = mpeg.series_uid
    with pytest.raises(Exception, match="MPEG"):
        g.load()


# --------------------------------------------------------------------------- snapshot
def test_snapshot_montage_and_png(sts_gallery):
    fig = sts_gallery.snapshot()
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 15
    assert fig.axes[0].get_xlabel().split("\n") == list(sts_gallery.tiles[0].lines)
    png = sts_gallery.to_png()
    px = _png_pixels(png)
    assert px.shape[0] > 300 and px.shape[1] > 600
    assert px.std() > 30 and (px < 20).mean() > 0.2  # thumbnails (dark) on white
    bundle = sts_gallery._repr_mimebundle_()
    assert base64.b64decode(bundle["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_snapshot_of_an_empty_gallery(sts_index):
    g = gallery(sts_index, modalities=["US"], progress=False)
    assert g.tiles == [] and "no series" in _figure_texts(g.snapshot())


def test_bad_arguments(sts_index):
    with pytest.raises(TypeError, match="source must be"):
        gallery(42)
    with pytest.raises(KeyError, match="not in the index"):
        gallery(sts_index, series=["1.2.3"], progress=False)
    with pytest.raises(ValueError, match="size"):
        gallery(sts_index, size=4, progress=False)
    with pytest.raises(FileNotFoundError):
        gallery("/no/such/folder", progress=False)


# --------------------------------------------------------------------------- front end
_PAGE = """<!doctype html><html><body><div id="root"></div><script type="module">
const state = %s;
const handlers = {};
window.saved = 0;
window.sent = [];
const model = {
  get: (k) => state[k],
  set: (k, v) => { state[k] = v; (handlers["change:" + k] || []).forEach((f) => f()); },
  save_changes: () => { window.saved += 1; },
  send: (msg) => { window.sent.push(msg); },
  on: (ev, f) => { (handlers[ev] = handlers[ev] || []).push(f); },
  off: () => {},
};
window.model = model;
const url = URL.createObjectURL(new Blob([%s], { type: "text/javascript" }));
const mod = await import(url);
mod.default.render({ model, el: document.getElementById("root") });
window.ready = true;
</script></body></html>"""


def test_front_end_click_sets_the_selection(sts_gallery, offline_page):
    from medlab.view._gallery import _TileGrid

    esm = str(_TileGrid._esm)  # the bundled file's contents
    grid = sts_gallery._grid
    state = {"tiles": grid.tiles[:5], "selected_index": -1, "size": grid.size, "columns": 0}
    page = offline_page.page
    page.set_content(_PAGE % (json.dumps(state), json.dumps(esm)))
    page.wait_for_function("window.ready === true", timeout=10_000)
    tiles = page.locator("figure.medlab-tile")
    assert tiles.count() == 5
    # once loaded, the front end asks the kernel for its whole state (updates sent while the
    # module loaded may have been dropped)
    assert page.evaluate("window.sent") == [{"type": "medlab-sync"}]
    assert page.locator("figure.medlab-tile img").count() == 5
    assert page.evaluate("document.querySelector('figure.medlab-tile img').naturalWidth") == 128
    tiles.nth(2).click()
    assert page.evaluate("window.model.get('selected_index')") == 2
    assert page.evaluate("window.saved") == 1
    assert page.evaluate("[...document.querySelectorAll('figure.selected')].length") == 1
    assert "selected" in (tiles.nth(2).get_attribute("class") or "")
    tiles.nth(4).focus()
    page.keyboard.press("Enter")
    assert page.evaluate("window.model.get('selected_index')") == 4
    assert "selected" not in (tiles.nth(2).get_attribute("class") or "")
    assert not offline_page.external


def test_many_series_show_a_progress_bar(sts_index, capsys):
    # tqdm.auto falls back to the text bar outside notebooks: 30 series > the threshold of 20
    gallery(sts_index, modalities="all", progress=True)
    assert "thumbnails" in capsys.readouterr().err
    gallery(sts_index, modalities="all", progress=False)
    assert "thumbnails" not in capsys.readouterr().err


def test_missing_file_gives_a_placeholder(tmp_path):
    src = ml.data.fetch("wg04-modalities", progress=False) / "CT1_UNC.dcm"
    shutil.copy(src, tmp_path / "ct.dcm")
    index = ml.cohort.scan(tmp_path, progress=False, workers=1)
    os.remove(tmp_path / "ct.dcm")
    (tile,) = gallery(index, progress=False).tiles
    assert tile.kind == "placeholder" and "rescan" in tile.problem
