"""Radiomics: medlab against pyradiomics (pyradiomics-bhklab) and mirp, in one run.

Generates a synthetic CT-like image (int16 HU, 1.0 mm isotropic voxels) with
a lobulated ~30 mm lesion (textured rim, darker core) as the ROI, then
times, on the same in-memory image and mask:

* medlab on the feature families pyradiomics also computes (morphology,
  intensity statistics, GLCM, GLRLM, GLSZM, NGTDM and NGLDM/GLDM, in 3D,
  matrices averaged over the 13 directions, bins of 25 HU as pyradiomics'
  default ``binWidth``): the timed comparison;
* medlab's default feature set (``RadiomicsConfig()``: all 11 IBSI
  families, 3D averaged and merged, 32 bins);
* pyradiomics with its default settings (107 features);
* mirp (all IBSI features, 3D, 25 HU bins; read from NIfTI files so it sees
  the spacing), only in the full run and if installed.

Each tool runs once untimed (warm-up), then ``--repeat`` times; the best time
is reported. The ratio medlab/pyradiomics on the shared families is printed
(target: <= 0.5, i.e. medlab at least 2x faster) with a check that shared
features agree. The script never fails on a ratio.

    python benchmarks/bench_radiomics.py            # 128^3 voxels, ~30 mm lesion
    python benchmarks/bench_radiomics.py --quick    # CI: 48^3 voxels, ~20 mm lesion
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from _timing import best_time
from scipy import ndimage

# medlab tag -> pyradiomics feature; definitions coincide (pyradiomics' kurtosis is not excess)
SHARED = {
    "morph_volume": "original_shape_MeshVolume",
    "morph_area_mesh": "original_shape_SurfaceArea",
    "morph_sphericity": "original_shape_Sphericity",
    "morph_diam": "original_shape_Maximum3DDiameter",
    "stat_mean": "original_firstorder_Mean",
    "stat_var": "original_firstorder_Variance",
    "stat_skew": "original_firstorder_Skewness",
    "stat_p10": "original_firstorder_10Percentile",
    "stat_energy": "original_firstorder_Energy",
    "stat_rmad": "original_firstorder_RobustMeanAbsoluteDeviation",
    "cm_joint_entr_d1_3d_avg": "original_glcm_JointEntropy",
    "cm_contrast_d1_3d_avg": "original_glcm_Contrast",
    "cm_corr_d1_3d_avg": "original_glcm_Correlation",
    "cm_energy_d1_3d_avg": "original_glcm_JointEnergy",
    "cm_clust_shade_d1_3d_avg": "original_glcm_ClusterShade",
    "rlm_sre_3d_avg": "original_glrlm_ShortRunEmphasis",
    "rlm_glnu_norm_3d_avg": "original_glrlm_GrayLevelNonUniformityNormalized",
    "szm_sze_3d": "original_glszm_SmallAreaEmphasis",
    "szm_z_perc_3d": "original_glszm_ZonePercentage",
    "ngt_coarseness_3d": "original_ngtdm_Coarseness",
    "ngt_busyness_3d": "original_ngtdm_Busyness",
    "ngl_lde_d1_a0_3d": "original_gldm_SmallDependenceEmphasis",
    "ngl_dc_entr_d1_a0_3d": "original_gldm_DependenceEntropy",
}


# ---------------------------------------------------------------- synthetic case
def make_case(n: int, radius_mm: float, *, spacing: float = 1.0, seed: int = 0):
    """A CT-like int16 image (HU) and a lobulated lesion mask, both medlab Images."""
    import medlab as ml

    rng = np.random.default_rng(seed)
    ax = (np.arange(n) - (n - 1) / 2) * spacing
    z, y, x = np.meshgrid(ax, ax, ax, indexing="ij")
    r = np.sqrt(x * x + y * y + z * z)
    theta = np.arccos(np.divide(z, r, out=np.zeros_like(r), where=r > 0))
    phi = np.arctan2(y, x)
    lesion = r <= radius_mm * (1 + 0.15 * np.sin(3 * theta) * np.cos(2 * phi))
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (n, n, n)), 1.2)
    texture /= texture.std()
    hu = 40 + 12 * texture + rng.normal(0, 8, (n, n, n))  # soft tissue
    hu = np.where(lesion, 70 + 35 * texture + rng.normal(0, 10, (n, n, n)), hu)
    hu = np.where(lesion & (r < 0.35 * radius_mm), 15 + 10 * texture, hu)  # necrotic core
    hu = np.round(hu).astype(np.int16)
    low = hu[lesion].min()
    # make the ROI minimum a multiple of 25 HU: pyradiomics' bin edges start at
    # multiples of binWidth, IBSI's at the ROI minimum; this aligns both
    first = tuple(np.argwhere(lesion & (hu == low))[0])
    hu[first] = int(np.floor(low / 25.0) * 25)
    affine = np.diag([spacing, spacing, spacing, 1.0])
    image = ml.Image(hu, affine, meta={"modality": "CT", "units": "HU"})
    mask = ml.Image(lesion.astype(np.uint8), affine)
    return image, mask


# ---------------------------------------------------------------------- tools
def run_medlab(image, mask, config):
    import medlab as ml

    df = ml.measure.radiomics(image, mask, config=config)
    return dict(zip(df.feature, df.value, strict=True))


def pyradiomics_runner(image, mask):
    try:
        from radiomics import featureextractor, setVerbosity
    except ImportError:
        return None
    setVerbosity(60)
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    sitk_image, sitk_mask = image.to_simpleitk(), mask.to_simpleitk()
    extractor = featureextractor.RadiomicsFeatureExtractor(binWidth=25, label=1)

    def run():
        res = extractor.execute(sitk_image, sitk_mask)
        return {k: float(v) for k, v in res.items() if k.startswith("original_")}

    return run


def mirp_runner(image, mask, folder: Path):
    try:
        from mirp import extract_features
    except ImportError:
        return None
    import medlab as ml

    img_path, mask_path = folder / "image.nii.gz", folder / "mask.nii.gz"
    ml.io.save(image, img_path)
    ml.io.save(mask, mask_path)

    def run():
        logging.disable(logging.INFO)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tables = extract_features(
                    image=str(img_path), mask=str(mask_path), image_modality="CT",
                    base_discretisation_method="fixed_bin_size",
                    base_discretisation_bin_width=25.0, ivh_discretisation_method="none",
                    export_features=True, write_features=False,
                )
        finally:
            logging.disable(logging.NOTSET)
        table = tables[0]
        return {c: table[c].iloc[0] for c in table.columns}

    return run


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


# ----------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small image, one repeat (CI)")
    parser.add_argument("--repeat", type=int, default=None, help="timed runs per tool (best kept)")
    parser.add_argument("--no-mirp", action="store_true", help="skip mirp (slow)")
    args = parser.parse_args(argv)
    from medlab.measure import RadiomicsConfig

    n, radius = (48, 10.0) if args.quick else (128, 15.0)
    repeat = args.repeat or (1 if args.quick else 5)
    image, mask = make_case(n, radius)
    n_roi = int(mask.array.sum())
    print(f"case: {n}^3 voxels, spacing 1.0 x 1.0 x 1.0 mm, lesion ~{2 * radius:.0f} mm "
          f"({n_roi} voxels), int16 HU")

    shared_cfg = RadiomicsConfig(
        families=("morph", "stat", "cm", "rlm", "szm", "ngt", "ngl"), aggregation=("3d_avg",),
        discretisation="fbs", bin_width=25.0,
    )
    rows = []
    t_shared, med = best_time(lambda: run_medlab(image, mask, shared_cfg), repeat)
    rows.append(("medlab, families pyradiomics has", len(med), t_shared))
    t_all, med_all = best_time(lambda: run_medlab(image, mask, RadiomicsConfig()), repeat)
    rows.append(("medlab, default (all IBSI families)", len(med_all), t_all))

    pyrad = pyradiomics_runner(image, mask)
    t_py = None
    if pyrad is not None:
        t_py, py = best_time(pyrad, repeat)
        rows.append((f"pyradiomics {version('pyradiomics-bhklab')} (default)", len(py), t_py))
    mirp_out = None
    if not (args.quick or args.no_mirp):
        with tempfile.TemporaryDirectory() as tmp:
            mirp = mirp_runner(image, mask, Path(tmp))
            if mirp is not None:
                t0 = time.perf_counter()
                mirp_out = mirp()  # one run: it is slow
                rows.append((f"mirp {version('mirp')} (all, 3D, 25 HU bins)", len(mirp_out),
                             time.perf_counter() - t0))

    print(f"\n{'tool':44s} {'features':>8s} {'time (s)':>9s}")
    for name, count, secs in rows:
        print(f"{name:44s} {count:8d} {secs:9.3f}")
    print()
    if t_py is None:
        print("ratio medlab/pyradiomics: n/a (pyradiomics not installed: "
              "pip install pyradiomics-bhklab)")
        return 0
    ratio = t_shared / t_py
    verdict = "meets" if ratio <= 0.5 else "MISSES"
    print(f"ratio medlab/pyradiomics on the families both compute: {ratio:.3f} "
          f"({1 / ratio:.1f}x faster; {verdict} the target <= 0.5)")
    print(f"ratio medlab default set / pyradiomics: {t_all / t_py:.3f}")
    print("\nshared features (medlab vs pyradiomics, relative difference):")
    worst = 0.0
    for tag, py_name in SHARED.items():
        a, b = med[tag], py[py_name]
        rel = abs(a - b) / max(abs(b), 1e-12)
        worst = max(worst, rel)
        print(f"  {tag:28s} {a:14.6g} {b:14.6g} {rel:9.2e}")
    print(f"  largest relative difference: {worst:.2e}")
    if mirp_out is not None:
        # mirp bins from -1000 HU and merges GLCM/GLRLM directions by default
        cfg = RadiomicsConfig(discretisation="fbs", bin_width=25.0,
                              resegmentation_range=(-1000.0, None))
        ours = run_medlab(image, mask, cfg)
        print("\nIBSI features (medlab vs mirp, relative difference):")
        for tag in ("morph_volume", "morph_moran_i", "stat_mean", "cm_joint_entr_d1_3d_v_mrg",
                    "rlm_sre_3d_v_mrg", "szm_sze_3d", "dzm_sde_3d", "ngt_coarseness_3d",
                    "ngl_dc_entr_d1_a0_3d"):
            name = tag.replace("_a0_", "_a0.0_")
            key = next((k for k in mirp_out if k in (name, f"{name}_fbs_w25.0")), None)
            if key is None:
                continue
            a, b = ours[tag], float(mirp_out[key])
            print(f"  {tag:28s} {a:14.6g} {b:14.6g} {abs(a - b) / max(abs(b), 1e-12):9.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
