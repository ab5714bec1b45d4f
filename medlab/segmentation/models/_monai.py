"""MONAI bundles (metadata.json, an inference config, weights), run with MONAI's own transforms."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ... import geometry as geo
from ...image import Image
from ._base import Model, ModelError, read_json, require

__all__ = ["MonaiBundle"]

_CONFIG_NAMES = ("inference.json", "inference.yaml", "inference.yml")
_LOADERS = ("LoadImaged", "LoadImage")


class MonaiBundle(Model):
    """A MONAI bundle: ``configs/metadata.json``, ``configs/inference.json``
    (or ``.yaml``) and ``models/model.pt``.

    The bundle's own ``preprocessing`` transforms run on the image (all of
    them but the file loader): orientation (``Orientationd``), spacing
    (``Spacingd``), the intensity scaling it declares, cropping. Its
    ``network_def`` with the weights and its ``inferer`` (usually a
    ``SlidingWindowInferer``) make the scores. medlab then applies the
    activation of the bundle's post-processing (softmax unless it asks for
    sigmoid), resamples the class probabilities from the preprocessed grid
    (whose affine MONAI tracks) back to the input grid (linear) and takes
    the arg-max. Label names come from ``metadata.json``
    (``network_data_format.outputs.pred.channel_def``).

    Parameters
    ----------
    folder : path
        The bundle folder.
    config : str, optional
        Inference config file in ``configs/``; default the first of
        ``inference.json``, ``inference.yaml``.
    weights : str
        Weights file, relative to the bundle (a state dict, or a dict with
        a ``'model'`` state dict as MONAI's CheckpointSaver writes).
    sw_batch_size : int, optional
        Windows per network call; default the inferer's own.
    """

    def __init__(self, folder: str | os.PathLike, *, config: str | None = None,
                 weights: str = "models/model.pt", sw_batch_size: int | None = None) -> None:
        super().__init__()
        self.folder = Path(folder)
        what = f"MONAI bundle {self.folder}"
        if not self.folder.is_dir():
            raise ModelError(f"{what} does not exist")
        self.metadata = read_json(self.folder / "configs" / "metadata.json", what)
        names = [config] if config else list(_CONFIG_NAMES)
        found = [self.folder / "configs" / n for n in names if (self.folder / "configs" / n).is_file()]
        if not found:
            raise ModelError(f"{what} has no inference config (looked for configs/{', configs/'.join(names)})")
        self.config_path = found[0]
        self.weights_path = self.folder / weights
        if not self.weights_path.is_file():
            raise ModelError(f"{what} has no weights file {self.weights_path}; bundles keep them in "
                             "models/model.pt (pass weights= for another name)")
        self.name = str(self.metadata.get("name") or self.folder.name)
        self.version = str(self.metadata.get("version") or "unversioned")
        self.source = f"MONAI bundle {self.folder}"
        fmt = self.metadata.get("network_data_format") or {}
        outputs = fmt.get("outputs") or {}
        pred = outputs.get("pred") or next(iter(outputs.values()), {})
        channel_def = (pred or {}).get("channel_def") or {}
        self.labels = {int(k): str(v) for k, v in channel_def.items() if int(k) != 0}
        inputs = fmt.get("inputs") or {}
        image_in = inputs.get("image") or next(iter(inputs.values()), {})
        self.n_channels = int((image_in or {}).get("num_channels", 1))
        self.sw_batch_size = sw_batch_size
        self._parsed: dict[str, Any] | None = None
        self.orientation = None
        self._parse_orientation()

    def weight_files(self) -> list[Path]:
        return [self.weights_path]

    # ------------------------------------------------------------ config
    def _parser(self, device: Any) -> Any:
        bundle = require("monai.bundle", feature="MONAI bundles")
        parser = bundle.ConfigParser()
        parser.read_meta(str(self.folder / "configs" / "metadata.json"))
        parser.read_config(str(self.config_path))
        parser["bundle_root"] = str(self.folder)
        parser["device"] = f"$torch.device('{device}')"
        return parser

    def _raw_preprocessing(self) -> list[dict[str, Any]]:
        import json

        text = self.config_path.read_text(encoding="utf-8")
        if self.config_path.suffix == ".json":
            cfg = json.loads(text)
        else:
            import yaml

            cfg = yaml.safe_load(text)
        pre = (cfg or {}).get("preprocessing") or {}
        return list(pre.get("transforms") or []) if isinstance(pre, dict) else []

    def _parse_orientation(self) -> None:
        """The bundle's ``Orientationd(axcodes=...)`` as medlab's Image.orientation letters."""
        for t in self._raw_preprocessing():
            target = str(t.get("_target_", "")) if isinstance(t, dict) else ""
            if target.split(".")[-1] in ("Orientationd", "Orientation") and t.get("axcodes"):
                codes = str(t["axcodes"]).upper()  # MONAI/nibabel: letters of (x, y, z) axes
                if len(codes) == 3 and not codes.startswith(("$", "@")):
                    self.orientation = codes[::-1]  # medlab: (slice, row, column) = (z, y, x)

    def _load(self, device: Any) -> dict[str, Any]:
        if self._parsed is not None and self._parsed["device"] == device:
            return self._parsed
        torch = require("torch", feature="MONAI bundles")
        parser = self._parser(device)
        try:
            with warnings.catch_warnings():  # MONAI's notices about its own changed defaults
                warnings.simplefilter("ignore", FutureWarning)
                net = parser.get_parsed_content("network_def", instantiate=True)
                pre = parser.get_parsed_content("preprocessing", instantiate=True)
                inferer = parser.get_parsed_content("inferer", instantiate=True)
        except KeyError as exc:
            raise ModelError(f"{self.config_path} lacks {exc} (a bundle's inference config defines "
                             "network_def, preprocessing and inferer)") from exc
        state = torch.load(self.weights_path, map_location=device, weights_only=True)
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]
        net.load_state_dict(state)
        net.to(device).eval()
        transforms = [t for t in getattr(pre, "transforms", [pre]) if type(t).__name__ not in _LOADERS]
        activation = "softmax"
        try:
            post = parser.get_parsed_content("postprocessing", instantiate=True)
            for t in getattr(post, "transforms", []):
                if type(t).__name__ == "Activationsd" and any(getattr(t.converter, "sigmoid", [])):
                    activation = "sigmoid"
        except (KeyError, AttributeError, TypeError):
            pass
        if self.sw_batch_size is not None and hasattr(inferer, "sw_batch_size"):
            inferer.sw_batch_size = int(self.sw_batch_size)
        self._parsed = {"device": device, "net": net, "pre": transforms, "inferer": inferer,
                        "activation": activation}
        return self._parsed

    # --------------------------------------------------------------- run
    def _predict(self, image: Image, *, device: Any, progress: bool, **options: Any) -> np.ndarray:
        torch = require("torch", feature="MONAI bundles")
        data_mod = require("monai.data", feature="MONAI bundles")
        parts = self._load(device)
        arr = np.asarray(image.array, dtype=np.float32)
        # MONAI's LoadImage gives (x, y, z[, c]) arrays with a RAS affine: medlab's reversed
        arr = arr.transpose(2, 1, 0, 3) if image.channels else arr.transpose(2, 1, 0)
        affine_ras = geo.LPS_TO_RAS @ geo.swap_xyz_index(image.affine)
        meta = {"original_channel_dim": -1 if image.channels else "no_channel",
                "spatial_shape": np.asarray(arr.shape[:3]), "original_affine": affine_ras,
                "filename_or_obj": "medlab image"}
        tensor = data_mod.MetaTensor(torch.from_numpy(np.ascontiguousarray(arr)),
                                     affine=torch.as_tensor(affine_ras, dtype=torch.float64),
                                     meta=meta)
        data: Any = {"image": tensor}
        for t in parts["pre"]:
            data = t(data)
        x = data["image"]
        pre_affine = np.asarray(x.affine.cpu().numpy() if hasattr(x, "affine") else affine_ras,
                                dtype=float)
        with torch.inference_mode():
            logits = parts["inferer"](inputs=x.as_tensor()[None].to(device), network=parts["net"])
            logits = logits.float()
            probs = (torch.sigmoid(logits) if parts["activation"] == "sigmoid"
                     else torch.softmax(logits, dim=1))
        probs_np = probs[0].detach().cpu().numpy()  # (class, x', y', z')
        on_model = Image(np.ascontiguousarray(probs_np.transpose(3, 2, 1, 0)),
                         geo.swap_xyz_index(geo.RAS_TO_LPS @ pre_affine), channels=True)
        back = on_model.resample_to(image, interpolation="linear", default_value=0.0).array
        if parts["activation"] == "sigmoid" and back.shape[-1] == 1:
            return (back[..., 0] > 0.5).astype(np.uint8)
        return np.argmax(back, axis=-1)
