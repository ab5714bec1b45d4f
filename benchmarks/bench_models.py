"""Deep-learning models: medlab.segmentation.models against each format's own predictor.

On the same in-memory image (a synthetic phantom, 1.0 x 1.5 x 2.0 mm voxels
given in DICOM axial order 'SPL', so medlab must reorient it), times:

* an nnU-Net v2 results folder (the tiny example model, 16^3 patches in
  the quick run, 32 x 64 x 64 in the full one, Gaussian sliding windows): ``model(image)`` against nnunetv2's
  ``nnUNetPredictor.predict_single_npy_array`` on the array already put in
  the training orientation by hand;
* a MONAI bundle (the example bundle, a Gaussian ``SlidingWindowInferer``):
  ``model(image)`` against the bundle's own transforms and inferer on a
  ``MetaTensor`` of the image (labels left on the preprocessed grid);
* deepbet on the MNI152 T1 (full run only; ~1 min on 2 CPU cores):
  ``model(t1)`` against ``BrainExtraction.run_model`` + ``postprocess`` on
  the RAS+ array.

Reported: voxels per second of each, the ratio medlab / own predictor
(goal <= 1.1: the geometry costs little) and whether the labels agree
voxel for voxel. Runs on the CPU unless ``--device`` says otherwise. The
script never fails on a ratio.

    python benchmarks/bench_models.py            # 96 x 96 x 64 phantom, deepbet too
    python benchmarks/bench_models.py --quick    # CI: 48 x 40 x 32, tiny models only
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
from _timing import best_time


def phantom(shape):
    import medlab as ml
    from medlab import geometry as geo

    rng = np.random.default_rng(0)
    arr = 10 + rng.normal(0, 2, shape).astype(np.float32)
    s = [slice(n // 4, n // 4 + max(2, n // 3)) for n in shape]
    arr[tuple(s)] += 90
    image = ml.Image(arr, geo.compose_affine((1.0, 1.5, 2.0), (3.0, -4.0, 5.0), np.eye(3)))
    return image.reorient("SPL")


def row(name, n_vox, t):
    print(f"  {name:<58s} {t:8.3f} s  {n_vox / t / 1e6:8.3f} Mvoxel/s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small phantom, tiny models (CI)")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    import torch

    from medlab import geometry as geo
    from medlab.segmentation import models

    repeat = args.repeat or (1 if args.quick else 3)
    shape = (48, 40, 32) if args.quick else (96, 96, 64)
    image = phantom(shape)
    n_vox = int(np.prod(image.spatial_shape))
    device = models.torch_device(args.device)
    print(f"case: phantom {image.spatial_shape} voxels ({image.orientation}), spacing "
          f"{image.spacing} mm; torch {torch.__version__}, device {device}, "
          f"{torch.get_num_threads()} threads")
    tmp = Path(tempfile.mkdtemp(prefix="medlab-bench-models-"))

    # ------------------------------------------------------------ nnU-Net
    patch = (16, 16, 16) if args.quick else (32, 64, 64)
    nn = models.load(models.example_nnunet(tmp, spacing=(2.0, 1.5, 1.0), patch_size=patch),
                     orientation="SAR")
    t_med, lab = best_time(lambda: nn(image, device=device, progress=False), repeat)
    sar = image.reorient("SAR")
    predictor = nn.predictor(device)
    arr = np.asarray(sar.array, dtype=np.float32)[None]
    t_own, own = best_time(lambda: predictor.predict_single_npy_array(
        arr, {"spacing": list(sar.spacing)}, None, None, False), repeat)
    same = np.array_equal(lab.reorient("SAR").array, own)
    print("nnU-Net v2 (example model, 2-stage PlainConvUNet):")
    row("medlab model(image), any orientation", n_vox, t_med)
    row("nnUNetPredictor.predict_single_npy_array (reoriented)", n_vox, t_own)
    print(f"  ratio medlab/nnunetv2: {t_med / t_own:.2f} (goal <= 1.1); same labels: "
          f"{'yes' if same else 'NO'}")

    # -------------------------------------------------------------- MONAI
    mb = models.load(models.example_monai_bundle(tmp, pixdim=(1.0, 1.5, 2.0), roi_size=patch[::-1]))
    t_med, lab = best_time(lambda: mb(image, device=device, progress=False), repeat)
    parts = mb._load(device)
    from monai.data import MetaTensor

    affine_ras = geo.LPS_TO_RAS @ geo.swap_xyz_index(image.affine)
    x_arr = np.ascontiguousarray(np.asarray(image.array, np.float32).transpose(2, 1, 0))

    def monai_own():
        data = {"image": MetaTensor(torch.from_numpy(x_arr), affine=torch.as_tensor(affine_ras),
                                    meta={"original_channel_dim": "no_channel"})}
        for t in parts["pre"]:
            data = t(data)
        with torch.inference_mode():
            logits = parts["inferer"](inputs=data["image"].as_tensor()[None].to(device),
                                      network=parts["net"])
        return torch.argmax(torch.softmax(logits, 1), 1)[0].cpu().numpy()

    t_own, own = best_time(monai_own, repeat)
    same = np.array_equal(lab.reorient("SAR").array.transpose(2, 1, 0), own)
    print("MONAI bundle (example bundle, SlidingWindowInferer):")
    row("medlab model(image), labels on the input grid", n_vox, t_med)
    row("bundle transforms + inferer (labels on RAS grid)", n_vox, t_own)
    print(f"  ratio medlab/monai: {t_med / t_own:.2f} (goal <= 1.1); same labels: "
          f"{'yes' if same else 'NO'}")

    # ------------------------------------------------------------- deepbet
    if not args.quick:
        import medlab as ml

        t1 = ml.load(ml.data.fetch("mni152") / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
        bet_model = models.load("deepbet")
        t_med, lab = best_time(lambda: bet_model(t1, device=device, progress=False), 1)
        from deepbet.bet import BrainExtraction

        bet = BrainExtraction(no_gpu=device.type == "cpu")
        x = np.ascontiguousarray(t1.reorient("SAR").array.astype(np.float32).transpose(2, 1, 0))
        t_own, own = best_time(lambda: bet.postprocess(bet.run_model(x.copy()) > 0.5), 1)
        n_t1 = int(np.prod(t1.spatial_shape))
        same = np.array_equal(lab.reorient("SAR").array.transpose(2, 1, 0) > 0, own > 0)
        print("deepbet (MNI152 T1 2009a, 197 x 233 x 189 at 1 mm):")
        row("medlab model(t1)", n_t1, t_med)
        row("deepbet BrainExtraction.run_model + postprocess", n_t1, t_own)
        print(f"  ratio medlab/deepbet: {t_med / t_own:.2f} (goal <= 1.1); same labels: "
              f"{'yes' if same else 'NO'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
