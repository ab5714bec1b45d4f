"""Tiny models in each format with hand-set weights, whose right answer is known.

For tutorials and tests: a network that marks every voxel whose neighbour
one voxel back along the model's first array axis is brighter than a
threshold. The label is the bright object shifted by one model voxel in
one known world direction, so a wrong orientation, axis order or spacing
shows up as labels in the wrong place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from ._base import require

__all__ = ["example_monai_bundle", "example_nnunet"]


def _zero_(module: object) -> None:
    for p in module.parameters():  # type: ignore[attr-defined]
        p.data.zero_()


def example_nnunet(
    folder: str | os.PathLike,
    *,
    spacing: Sequence[float] = (2.0, 1.0, 1.0),
    patch_size: Sequence[int] = (16, 16, 16),
    name: str = "Dataset999_MedlabShift",
    trainer: str = "nnUNetTrainer",
    labels: dict[str, int] | None = None,
) -> Path:
    """Write an nnU-Net v2 results folder holding a 2-stage PlainConvUNet with set weights.

    The model (``ZScoreNormalization``, target ``spacing`` in nnU-Net's
    array order = medlab's (slice, row, column)) labels a voxel 1
    (``'shifted'``) where the normalised value one voxel back along array
    axis 0 is above 0, i.e. above the image mean. Its ``dataset.json`` and
    ``plans.json`` are what ``nnUNetv2_plan_and_preprocess`` writes, minus
    the training-only entries; ``fold_0/checkpoint_final.pth`` is a real
    checkpoint (no mirroring allowed). Trained on nothing: the orientation is
    the caller's to state (see :class:`NnUNetModel`).

    ``trainer`` names the results folder only (the checkpoint's network is
    built by ``nnUNetTrainer``); ``labels`` renames the label (default
    ``{'background': 0, 'shifted': 1}``).

    Returns
    -------
    pathlib.Path
        ``folder/<name>/<trainer>__nnUNetPlans__3d_fullres``.
    """
    torch = require("torch", feature="example models")
    plans_mod = require("nnunetv2.utilities.get_network_from_plans", feature="example models")
    out = Path(folder) / name / f"{trainer}__nnUNetPlans__3d_fullres"
    (out / "fold_0").mkdir(parents=True, exist_ok=True)
    arch = {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {
            "n_stages": 2, "features_per_stage": [2, 2],
            "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": [[3, 3, 3], [3, 3, 3]], "strides": [[1, 1, 1], [2, 2, 2]],
            "n_conv_per_stage": [1, 1], "n_conv_per_stage_decoder": [1], "conv_bias": True,
            "norm_op": None, "norm_op_kwargs": None, "dropout_op": None, "dropout_op_kwargs": None,
            "nonlin": None, "nonlin_kwargs": None,
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }
    resampling = {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None}
    plans = {
        "dataset_name": name, "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [float(s) for s in spacing],
        "original_median_shape_after_transp": [int(p) * 2 for p in patch_size],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "configurations": {"3d_fullres": {
            "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor",
            "batch_size": 2, "patch_size": [int(p) for p in patch_size],
            "median_image_size_in_voxels": [int(p) * 2 for p in patch_size],
            "spacing": [float(s) for s in spacing],
            "normalization_schemes": ["ZScoreNormalization"], "use_mask_for_norm": [False],
            "resampling_fn_data": "resample_data_or_seg_to_shape",
            "resampling_fn_data_kwargs": resampling,
            "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_seg_kwargs": {**resampling, "is_seg": True},
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": resampling,
            "architecture": arch, "batch_dice": False,
        }},
        "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": {
            "max": 100.0, "mean": 50.0, "median": 50.0, "min": 0.0, "percentile_00_5": 0.0,
            "percentile_99_5": 100.0, "std": 30.0}},
    }
    dataset = {"channel_names": {"0": "T1"}, "labels": labels or {"background": 0, "shifted": 1},
               "numTraining": 0, "file_ending": ".nii.gz", "release": "1.0",
               "description": "medlab example: the bright object shifted one voxel along axis 0"}
    net = plans_mod.get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"],
                                           arch["_kw_requires_import"], 1, 2, allow_init=True,
                                           deep_supervision=False)
    _zero_(net)
    with torch.no_grad():
        net.encoder.stages[0][0].convs[0].conv.weight[0, 0, 0, 1, 1] = 1.0  # x[k-1]
        net.decoder.stages[0].convs[0].conv.weight[0, 2, 1, 1, 1] = 1.0  # the skip's channel 0
        net.decoder.seg_layers[0].weight[1, 0, 0, 0, 0] = 1.0  # class 1 score; class 0 scores 0
    torch.save({"network_weights": net.state_dict(), "trainer_name": "nnUNetTrainer",
                "init_args": {"configuration": "3d_fullres"},
                "inference_allowed_mirroring_axes": None}, out / "fold_0" / "checkpoint_final.pth")
    (out / "plans.json").write_text(json.dumps(plans, indent=2))
    (out / "dataset.json").write_text(json.dumps(dataset, indent=2))
    return out


def example_monai_bundle(
    folder: str | os.PathLike,
    *,
    pixdim: Sequence[float] = (1.0, 1.0, 2.0),
    intensity_range: tuple[float, float] = (0.0, 100.0),
    roi_size: Sequence[int] = (16, 16, 16),
    name: str = "medlab_shift_bundle",
) -> Path:
    """Write a MONAI bundle whose network is one 3x3x3 convolution with set weights.

    Its inference config does what real bundles do: ``Orientationd`` to RAS,
    ``Spacingd`` to ``pixdim`` (x, y, z mm), ``ScaleIntensityRanged``
    mapping ``intensity_range`` to [-1, 1], a Gaussian
    ``SlidingWindowInferer``. The network labels a voxel 1 (``'shifted'``)
    where the scaled value one voxel back along MONAI's x axis (towards the
    patient's left, so the label is the object moved one voxel to the
    right) is above 0, i.e. above the middle of ``intensity_range``.

    Returns
    -------
    pathlib.Path
        ``folder/<name>``.
    """
    torch = require("torch", feature="example models")
    out = Path(folder) / name
    (out / "configs").mkdir(parents=True, exist_ok=True)
    (out / "models").mkdir(parents=True, exist_ok=True)
    lo, hi = (float(v) for v in intensity_range)
    metadata = {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/"
                  "0.8.1/meta_schema_20220324.json",
        "version": "0.1.0", "name": name, "monai_version": "1.6.1",
        "task": "medlab example: the bright object shifted one voxel to the right",
        "license": "BSD-3-Clause",
        "network_data_format": {
            "inputs": {"image": {"type": "image", "format": "magnitude", "modality": "MR",
                                 "num_channels": 1, "spatial_shape": list(roi_size),
                                 "dtype": "float32", "value_range": [lo, hi],
                                 "is_patch_data": True, "channel_def": {"0": "image"}}},
            "outputs": {"pred": {"type": "image", "format": "segmentation", "num_channels": 2,
                                 "spatial_shape": list(roi_size), "dtype": "float32",
                                 "value_range": [0, 1], "is_patch_data": True,
                                 "channel_def": {"0": "background", "1": "shifted"}}},
        },
    }
    inference = {
        "imports": ["$import torch"],
        "bundle_root": ".", "device": "$torch.device('cpu')",
        "network_def": {"_target_": "torch.nn.Conv3d", "in_channels": 1, "out_channels": 2,
                        "kernel_size": 3, "padding": 1},
        "network": "$@network_def.to(@device)",
        "preprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "LoadImaged", "keys": "image"},
            {"_target_": "EnsureChannelFirstd", "keys": "image"},
            {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"},
            {"_target_": "Spacingd", "keys": "image", "pixdim": [float(p) for p in pixdim],
             "mode": "bilinear"},
            {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": lo, "a_max": hi,
             "b_min": -1.0, "b_max": 1.0, "clip": True},
            {"_target_": "EnsureTyped", "keys": "image"},
        ]},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [int(r) for r in roi_size],
                    "sw_batch_size": 4, "overlap": 0.25, "mode": "gaussian"},
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "Activationsd", "keys": "pred", "softmax": True},
            {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
        ]},
    }
    net = torch.nn.Conv3d(1, 2, kernel_size=3, padding=1)
    _zero_(net)
    with torch.no_grad():
        net.weight[1, 0, 0, 1, 1] = 1.0  # class 1 score = x[i-1]; class 0 scores 0
    torch.save(net.state_dict(), out / "models" / "model.pt")
    (out / "configs" / "metadata.json").write_text(json.dumps(metadata, indent=2))
    (out / "configs" / "inference.json").write_text(json.dumps(inference, indent=2))
    return out
