"""A plain PyTorch baseline: the script a careful engineer writes in an hour, no winnow.

Pillow decodes every file once (alpha composited on white, letterboxed to 64 px on white);
10 % of each class is held out for a printed validation score and the rest trains. Model:
3×3 stride-2 stem (32 channels), then three residual blocks to 64, 128 and 256 channels,
each with stride 2, BatchNorm, global average pool, linear. AdamW (lr 3e-3, weight decay
0.05), a one-cycle schedule driven by elapsed time (20 % warm-up, cosine to zero at the
deadline), label smoothing 0.1, square-root class-balanced sampling, flip + 4-px shift
augmentation, batch 128, channels-last; the final weights are scored with flip test-time
augmentation by sklearn's classification_report. The clock starts after decoding (winnow's
scan is not counted either).

Usage: python benchmarks/plain_torch.py TRAIN_DIR TEST_DIR OUT.json [--minutes 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import classification_report, f1_score
from torch import nn

SIZE, BATCH, LR, WD = 64, 128, 3e-3, 0.05


def load(path: Path) -> np.ndarray | None:
    try:
        with Image.open(path) as image:
            image.draft("RGB", (SIZE * 2, SIZE * 2))
            image = image.convert("RGBA")
            image.thumbnail((SIZE, SIZE), Image.Resampling.BILINEAR)
            canvas = Image.new("RGBA", (SIZE, SIZE), (255, 255, 255, 255))
            offset = ((SIZE - image.width) // 2, (SIZE - image.height) // 2)
            canvas.alpha_composite(image, offset)
            return np.asarray(canvas.convert("RGB"))
    except Exception:  # noqa: BLE001 - an unreadable file is skipped, as a script would
        return None


def load_folder(folder: Path, classes: list[str] | None = None):
    classes = classes or sorted(p.name for p in folder.iterdir() if p.is_dir())
    files = [(f, i) for i, c in enumerate(classes) for f in sorted((folder / c).glob("*"))]
    with ProcessPoolExecutor(2) as pool:
        pixels = list(pool.map(load, [f for f, _ in files], chunksize=32))
    kept = [i for i, p in enumerate(pixels) if p is not None]
    images = torch.from_numpy(np.stack([pixels[i] for i in kept])).permute(0, 3, 1, 2)
    paths = [files[i][0].relative_to(folder).as_posix() for i in kept]
    return images.contiguous(), torch.tensor([files[i][1] for i in kept]), classes, paths


def block(cin: int, cout: int) -> nn.Module:
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True),
                nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
            )  # fmt: skip
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, 2, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            return torch.relu(self.body(x) + self.skip(x))

    return Block()


def small_resnet(classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(True),
        block(32, 64), block(64, 128), block(128, 256),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, classes),
    )  # fmt: skip


def augment(x: torch.Tensor) -> torch.Tensor:
    flip = torch.rand(len(x)) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    padded = nn.functional.pad(x, (4, 4, 4, 4), mode="replicate")
    dx, dy = np.random.randint(0, 9, 2)
    return padded[:, :, dy : dy + SIZE, dx : dx + SIZE]


def run(train_dir: Path, test_dir: Path, minutes: float, seed: int) -> dict:
    torch.manual_seed(seed)
    np.random.seed(seed)
    tick = time.perf_counter()
    images, labels, classes, _ = load_folder(train_dir)
    decode_seconds = time.perf_counter() - tick
    rng = np.random.default_rng(seed)
    val_mask = np.zeros(len(labels), dtype=bool)
    for c in range(len(classes)):
        members = np.flatnonzero(labels.numpy() == c)
        val_mask[rng.permutation(members)[: max(1, len(members) // 10)]] = True
    train_x, train_y = images[~val_mask], labels[~val_mask]
    mean = train_x.float().mean(dim=(0, 2, 3)).view(1, 3, 1, 1) / 255
    std = train_x.float().std(dim=(0, 2, 3)).view(1, 3, 1, 1) / 255

    def prepare(x):
        return ((x.float() / 255 - mean) / std).contiguous(memory_format=torch.channels_last)

    model = small_resnet(len(classes)).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WD)
    counts = torch.bincount(train_y, minlength=len(classes)).float()
    weights = counts[train_y] ** -0.5  # class c drawn in proportion to sqrt(n_c)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    budget, started, epochs, seen = minutes * 60, time.perf_counter(), 0, 0
    done = False
    while not done:
        order = torch.multinomial(weights, len(train_y), replacement=True)
        model.train()
        for start in range(0, len(order) - BATCH + 1, BATCH):
            progress = (time.perf_counter() - started) / budget
            if progress >= 1:
                done = True
                break
            warm = progress / 0.2
            cosine = 0.5 * (1 + math.cos(math.pi * (progress - 0.2) / 0.8))
            lr = LR * (warm if progress < 0.2 else cosine)
            for group in optimizer.param_groups:
                group["lr"] = lr
            index = order[start : start + BATCH]
            loss = loss_fn(model(prepare(augment(train_x[index]))), train_y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(index)
        epochs += 1
    train_seconds = time.perf_counter() - started

    def predict(x: torch.Tensor) -> np.ndarray:
        model.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(x), 256):
                batch = prepare(x[start : start + 256])
                out.append((model(batch).softmax(1) + model(batch.flip(3)).softmax(1)).argmax(1))
        return torch.cat(out).numpy()

    val_pred = predict(images[val_mask])
    test_x, test_y, _, test_paths = load_folder(test_dir, classes)
    y_true, y_pred = test_y.numpy(), predict(test_x)
    present = sorted(set(y_true.tolist()))
    return {
        "seed": seed,
        "decode_seconds": round(decode_seconds, 1),
        "train_seconds": round(train_seconds, 1),
        "epochs": epochs,
        "images_per_second": round(seen / train_seconds, 1),
        "val_items": int(val_mask.sum()),
        "val_macro_f1": float(f1_score(labels[val_mask].numpy(), val_pred, average="macro")),
        "test_items": int(len(y_true)),
        "test_macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro")),
        "test_micro_f1": float(f1_score(y_true, y_pred, labels=present, average="micro")),
        "report": classification_report(
            y_true, y_pred, labels=present, target_names=[classes[i] for i in present],
            zero_division=0,
        ),
        # per test file (path relative to TEST_DIR, predicted class): for paired comparisons
        "predictions": {
            path: classes[i] for path, i in zip(test_paths, y_pred.tolist(), strict=True)
        },
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train_dir", type=Path)
    parser.add_argument("test_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = run(args.train_dir, args.test_dir, args.minutes, args.seed)
    args.out.write_text(json.dumps(result, indent=2))
    print(result["report"])


if __name__ == "__main__":
    main()
