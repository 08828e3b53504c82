"""Grad-CAM overlays from a model's `forward_features` (Selvaraju et al. 2017).

The feature map of the last spatial layer is weighted by the spatially averaged gradient of
the predicted class's logit, rectified and upsampled: the regions that pushed the model to
its answer. Works for every registered model because they all expose `forward_features` /
`forward_head`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from winnow.data.io import atomic_output, printable
from winnow.errors import WinnowError
from winnow.inference.load import LoadedModel
from winnow.inference.preprocess import resize_square, to_input


def grad_cam(
    loaded: LoadedModel, pixels: np.ndarray, target: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One image (s, s, 3) uint8 → (heat map (s, s) in [0, 1], probabilities)."""
    import torch

    model = loaded.torch_model
    small = resize_square(pixels[None], loaded.preprocessing.image_size)
    inputs = torch.from_numpy(to_input(small, loaded.preprocessing))
    with torch.enable_grad():
        features = model.forward_features(inputs).detach().requires_grad_(True)
        logits = model.forward_head(features)
        probabilities = torch.softmax(logits.float(), dim=1)[0].detach().numpy()
        chosen = int(probabilities.argmax()) if target is None else target
        logits[0, chosen].backward()
    weights = features.grad[0].mean(dim=(1, 2))
    cam = torch.relu((weights[:, None, None] * features[0]).sum(0)).detach().numpy()
    if cam.max() > 0:
        cam = cam / cam.max()
    side = pixels.shape[0]
    heat = np.asarray(
        Image.fromarray((cam * 255).astype(np.uint8)).resize(
            (side, side), Image.Resampling.BILINEAR
        )
    )
    return heat.astype(np.float32) / 255, probabilities


def overlay(pixels: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend a jet-coloured heat map over the image."""
    import matplotlib

    colours = (matplotlib.colormaps["jet"](heat)[..., :3] * 255).astype(np.float32)
    weight = alpha * heat[..., None] ** 0.5
    return (pixels.astype(np.float32) * (1 - weight) + colours * weight).astype(np.uint8)


class ExplainError(WinnowError, ValueError):
    """The explanation asked for can't be made; the message says why."""


def class_index(loaded: LoadedModel, name: str | None) -> int | None:
    """The model's index of class `name` (None: explain each image's predicted class)."""
    if name is None:
        return None
    if name not in loaded.classes:
        raise ExplainError(
            f"The model has no class {name!r}; its classes: {', '.join(loaded.classes)}."
        )
    return loaded.classes.index(name)


def explain_files(
    paths: list[Path], loaded: LoadedModel, out_dir: Path, explained: str | None = None
) -> Iterator[tuple[Path, Path | None, dict]]:
    """Grad-CAM PNGs for image files (folders are walked): yields (source, PNG or None,
    answer or {"error": reason}) in order; unreadable files get no PNG. `explained`: the
    class whose evidence is drawn (default: each image's predicted class)."""
    from winnow.data.decode import prepare_worker
    from winnow.inference.predict import decode_path, expand_paths

    target_class = class_index(loaded, explained)
    prepare_worker()
    config = loaded.scan_config()
    for number, path in enumerate(expand_paths(paths)):
        decoded = decode_path(path, config)
        if decoded.pixels is None:
            yield path, None, {"error": decoded.error}
            continue
        target = Path(out_dir) / f"{number:04d}_{printable(path.stem)}.png"
        title = printable(str(path))
        yield (
            path,
            target,
            save_explanation(loaded, decoded.pixels, target, title, None, target_class),
        )


def save_explanation(
    loaded: LoadedModel,
    pixels: np.ndarray,
    path: Path,
    title: str,
    true_label: str | None = None,
    explained: int | None = None,
) -> dict:
    """Write a PNG: the image and its Grad-CAM overlay side by side, titled with the answer
    and, when it is not the prediction, the class explained. A map that is zero everywhere
    (nothing in the image raised that class's score) is said so in the title and the
    answer (`empty`)."""
    from matplotlib.figure import Figure

    heat, probabilities = grad_cam(loaded, pixels, explained)
    predicted = int(probabilities.argmax())
    shown = predicted if explained is None else explained
    empty = not bool(heat.max() > 0)
    fig = Figure(figsize=(5.2, 2.9))
    axes = fig.subplots(1, 2)
    axes[0].imshow(pixels)
    axes[1].imshow(overlay(pixels, heat))
    for ax in axes:
        ax.axis("off")
    answer = f"{loaded.classes[predicted]} ({probabilities[predicted]:.0%})"
    heading = f"predicted {answer}" + (f" · true {true_label}" if true_label else "")
    if shown != predicted:
        heading += f" · evidence for {loaded.classes[shown]} ({probabilities[shown]:.0%})"
    if empty:
        heading += " · Grad-CAM is zero: no region raised this class's score"
    fig.suptitle(f"{title}\n{heading}", fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return {
        "predicted": loaded.classes[predicted],
        "confidence": float(probabilities[predicted]),
        "explained": loaded.classes[shown],
        "explained_probability": float(probabilities[shown]),
        "empty": empty,
    }
