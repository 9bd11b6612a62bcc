"""Pictures of what a checkpoint predicts (matplotlib, headless).

- `plot_compare`: image | ground truth | prediction | probability heatmap, one row per image.
- `plot_evolution`: how the prediction changes across checkpoints of one run; pixels newly
  correct since the previous checkpoint are green, newly wrong red, still correct white,
  still wrong black.
- `plot_attention`: the attention-gate coefficients of `attention_*` models over the image.

Images go through the checkpoint's own evaluation transform (resize to its input size and
its normalization), so the pictures show exactly what the model saw.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.patches import Patch

from runtime.errors import ArgumentError, NotFoundError
from trainer.checkpoint import info_of, load_checkpoint, model_from_checkpoint
from trainer.data import SegmentationDataset, build_transform
from trainer.data.source import DataSource
from trainer.evaluate import as_source, class_map_of, split_samples
from trainer.figures import new_figure, save_figure
from trainer.models import list_models, model_spec
from trainer.models.blocks import AttentionGate

GREEN, RED, WHITE, BLACK = (0, 170, 0), (220, 0, 0), (255, 255, 255), (0, 0, 0)
EVOLUTION_LEGEND = (
    (GREEN, "newly correct"),
    (RED, "newly wrong"),
    (WHITE, "still correct"),
    (BLACK, "still wrong"),
)


@dataclass
class Shown:
    """One image as the model sees it: the input tensor, the image for display, the truth."""

    name: str
    x: torch.Tensor  # 3xHxW, normalized
    image: np.ndarray  # HxWx3 uint8, resized
    mask: np.ndarray  # HxW int class ids


@dataclass
class Prediction:
    """A model's output on one image: class ids and the foreground probability."""

    labels: np.ndarray  # HxW int
    foreground: np.ndarray  # HxW float in [0, 1]


def load_images(
    ckpt: dict,
    data: str | Path | DataSource,
    indices: Sequence[int] | None = None,
    split: str = "val",
    count: int = 4,
) -> list[Shown]:
    """The `indices` (default: the first `count`) of a split, at the checkpoint's input size.

    A folder without train/ and val/ or test/ is split as the run split it: with the
    `val_fraction` and `seed` of the checkpoint's training configuration.
    """
    source = as_source(data)
    trained = ckpt.get("train_config") or {}
    same_data = (
        source.data is not None
        and trained.get("data")
        and Path(trained["data"]).resolve() == Path(source.data).resolve()
    )
    if same_data and source.annotations is None and trained.get("annotations"):
        source = source.replace(annotations=trained["annotations"])
    samples = split_samples(ckpt, source, split)
    info = info_of(ckpt)
    transform = build_transform("plain", info.input_size, train=False, mean=info.mean, std=info.std)
    chosen = list(indices) if indices else list(range(min(count, len(samples))))
    bad = [i for i in chosen if not 0 <= i < len(samples)]
    if bad:
        raise ArgumentError(
            "--index",
            f"{', '.join(map(str, bad))} out of range; the {split} split of {data} "
            f"has {len(samples)} images (0..{len(samples) - 1})",
        )
    chosen_samples = [samples[i] for i in chosen]
    dataset = SegmentationDataset(chosen_samples, transform, class_map_of(ckpt), "error")
    mean = torch.tensor(info.mean).view(-1, 1, 1)
    std = torch.tensor(info.std).view(-1, 1, 1)
    shown = []
    for index, sample in enumerate(dataset.samples):
        x, mask = dataset[index]
        pixels = ((x * std + mean).clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        shown.append(Shown(sample.image.name, x, pixels, mask.numpy()))
    return shown


@torch.no_grad()
def predict(model: torch.nn.Module, shown: Sequence[Shown], threshold: float) -> list[Prediction]:
    """Class ids and foreground probability of each image (eval mode, CPU or model device)."""
    device = next(model.parameters()).device
    logits = model(torch.stack([s.x for s in shown]).to(device)).float().cpu()
    if logits.shape[1] == 1:
        prob = torch.sigmoid(logits[:, 0])
        labels = (prob > threshold).long()
    else:
        probs = torch.softmax(logits, dim=1)
        prob, labels = 1 - probs[:, 0], probs.argmax(dim=1)
    return [Prediction(lab.numpy(), p.numpy()) for lab, p in zip(labels, prob, strict=True)]


def dice(labels: np.ndarray, truth: np.ndarray) -> float:
    """Foreground Dice of one prediction (1.0 when both are empty)."""
    pred, gt = labels > 0, truth > 0
    total = pred.sum() + gt.sum()
    return 1.0 if total == 0 else float(2 * (pred & gt).sum() / total)


def evolution_map(previous_correct: np.ndarray | None, correct: np.ndarray) -> np.ndarray:
    """HxWx3 uint8: green newly correct, red newly wrong, white still correct, black still wrong.

    With no previous checkpoint every pixel is compared against "nothing correct yet":
    correct pixels are green, wrong ones black.
    """
    before = np.zeros_like(correct) if previous_correct is None else previous_correct
    out = np.zeros((*correct.shape, 3), dtype=np.uint8)
    out[correct & ~before] = GREEN
    out[~correct & before] = RED
    out[correct & before] = WHITE
    return out


def expand_checkpoints(paths: Sequence[str | Path]) -> list[Path]:
    """Checkpoint files in the given order; a run folder gives its epoch_N.pth and best.pth
    in epoch order."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            epochs = {_epoch_number(p): p for p in path.glob("epoch_*.pth")}
            if (path / "best.pth").is_file():
                # best.pth takes its epoch's place (and replaces that epoch_N.pth)
                epochs[load_checkpoint(path / "best.pth")["epoch"]] = path / "best.pth"
            if not epochs:
                raise NotFoundError(path, "no epoch_N.pth or best.pth in this run folder")
            found += [epochs[n] for n in sorted(epochs)]
        else:
            found.append(path)
    return found


def _epoch_number(path: Path) -> int:
    match = re.fullmatch(r"epoch_(\d+)\.pth", path.name)
    return int(match.group(1)) if match else -1


def _load(path: Path) -> tuple[dict, torch.nn.Module]:
    ckpt = load_checkpoint(path)
    return ckpt, model_from_checkpoint(ckpt, path).eval()


def _mask_axes(ax, mask: np.ndarray, num_classes: int) -> None:
    cmap = "gray" if num_classes <= 2 else "tab10"
    ax.imshow(mask, cmap=cmap, vmin=0, vmax=max(num_classes - 1, 1))


def _grid(rows: int, cols: int, cell: float = 2.2):
    fig = new_figure(cell * cols, cell * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes


def plot_compare(
    ckpt_path: str | Path,
    data: str | Path | DataSource,
    out_png: str | Path,
    indices: Sequence[int] | None = None,
    split: str = "val",
    count: int = 4,
    dpi: int = 100,
) -> Path:
    """image | ground truth | prediction | probability heatmap, one row per chosen image."""
    ckpt, model = _load(Path(ckpt_path))
    shown = load_images(ckpt, data, indices, split, count)
    preds = predict(model, shown, ckpt["threshold"])
    n_classes = max(ckpt["num_classes"], 2)
    fig, axes = _grid(len(shown), 4)
    for row, (s, p) in enumerate(zip(shown, preds, strict=True)):
        axes[row, 0].imshow(s.image)
        axes[row, 0].set_ylabel(s.name, fontsize=7)
        _mask_axes(axes[row, 1], s.mask, n_classes)
        _mask_axes(axes[row, 2], p.labels, n_classes)
        heat = axes[row, 3].imshow(p.foreground, cmap="magma", vmin=0, vmax=1)
        axes[row, 2].set_xlabel(f"Dice {dice(p.labels, s.mask):.3f}", fontsize=8)
    for col, title in enumerate(("image", "ground truth", "prediction", "P(foreground)")):
        axes[0, col].set_title(title, fontsize=9)
    fig.colorbar(heat, ax=axes.ravel().tolist(), fraction=0.02, pad=0.02)
    fig.suptitle(f"{ckpt['arch']}, epoch {ckpt['epoch']} ({Path(ckpt_path).name})", fontsize=9)
    return save_figure(fig, Path(out_png), dpi, tight_box=True)


@dataclass
class Stage:
    """One checkpoint of an evolution: its label and, per image, change map and Dice."""

    label: str
    maps: list[np.ndarray]
    dices: list[float]


def evolution(paths: Sequence[Path], shown: Sequence[Shown]) -> list[Stage]:
    """Change maps of each checkpoint against the one before it (the first against nothing)."""
    stages: list[Stage] = []
    previous: list[np.ndarray | None] = [None] * len(shown)
    size = None
    for path in paths:
        ckpt, model = _load(path)
        if size is not None and tuple(ckpt["input_size"]) != size:
            raise ArgumentError(
                path,
                f"input size {ckpt['input_size']} differs from {paths[0]}'s "
                f"{list(size)}; evolution compares checkpoints of one run",
            )
        size = tuple(ckpt["input_size"])
        preds = predict(model, shown, ckpt["threshold"])
        correct = [p.labels == s.mask for p, s in zip(preds, shown, strict=True)]
        best = path.name == "best.pth"
        stages.append(
            Stage(
                f"best (ep {ckpt['epoch']})" if best else f"epoch {ckpt['epoch']}",
                [evolution_map(b, c) for b, c in zip(previous, correct, strict=True)],
                [dice(p.labels, s.mask) for p, s in zip(preds, shown, strict=True)],
            )
        )
        previous = correct
    return stages


def _count(change: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int((change == colour).all(axis=-1).sum())


def plot_evolution(
    ckpt_paths: Sequence[str | Path],
    data: str | Path | DataSource,
    out_png: str | Path,
    indices: Sequence[int] | None = None,
    split: str = "val",
    dpi: int = 100,
) -> Path:
    """Per image: the image, its truth, then one change map per checkpoint (in the given order).

    Under each map: the Dice, and how many pixels became correct (+) or wrong (-).
    """
    paths = expand_checkpoints(ckpt_paths)
    first = load_checkpoint(paths[0])
    shown = load_images(first, data, indices, split)
    stages = evolution(paths, shown)
    fig, axes = _grid(len(shown), len(stages) + 2)
    n_classes = max(first["num_classes"], 2)
    for row, s in enumerate(shown):
        axes[row, 0].imshow(s.image)
        axes[row, 0].set_ylabel(s.name, fontsize=7)
        _mask_axes(axes[row, 1], s.mask, n_classes)
    titles = ["image", "ground truth", *(stage.label for stage in stages)]
    for ax, title in zip(axes[0], titles, strict=True):
        ax.set_title(title, fontsize=9)
    for col, stage in enumerate(stages, start=2):
        for row, (change, score) in enumerate(zip(stage.maps, stage.dices, strict=True)):
            axes[row, col].imshow(change)
            axes[row, col].set_xlabel(
                f"Dice {score:.3f}  +{_count(change, GREEN)} -{_count(change, RED)}", fontsize=7
            )
    handles = [
        Patch(facecolor=np.array(c) / 255, edgecolor="gray", label=name)
        for c, name in EVOLUTION_LEGEND
    ]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return save_figure(fig, Path(out_png), dpi)


def attention_gates(model: torch.nn.Module) -> list[tuple[str, AttentionGate]]:
    """The model's attention gates by module name, in registration order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, AttentionGate)]


def plot_attention(
    ckpt_path: str | Path,
    data: str | Path | DataSource,
    out_png: str | Path,
    indices: Sequence[int] | None = None,
    split: str = "val",
    count: int = 4,
    dpi: int = 100,
) -> Path:
    """Per image: the image, then each gate's coefficients (upsampled) over it, deep to shallow."""
    ckpt, model = _load(Path(ckpt_path))
    if not model_spec(ckpt["arch"]).attention_gates:
        gated = [name for name in list_models() if model_spec(name).attention_gates]
        raise ArgumentError(
            ckpt_path,
            f"architecture {ckpt['arch']!r} has no attention gates; attention maps exist "
            f"for {', '.join(gated)}",
        )
    gates = attention_gates(model)
    shown = load_images(ckpt, data, indices, split, count)
    predict(model, shown, ckpt["threshold"])  # fills each gate's last_attention
    maps = [gate.last_attention for _, gate in gates]
    order = sorted(range(len(gates)), key=lambda i: maps[i].shape[-2] * maps[i].shape[-1])
    size = shown[0].image.shape[:2]
    fig, axes = _grid(len(shown), len(gates) + 1)
    for col, g in enumerate(order, start=1):
        alpha = maps[g].float()
        axes[0, col].set_title(f"{gates[g][0]}\n{alpha.shape[-2]}x{alpha.shape[-1]}", fontsize=7)
        up = F.interpolate(alpha, size=size, mode="bilinear", align_corners=False)[:, 0]
        for row, s in enumerate(shown):
            axes[row, col].imshow(s.image)
            axes[row, col].imshow(up[row].numpy(), cmap="jet", alpha=0.5, vmin=0, vmax=1)
    for row, s in enumerate(shown):
        axes[row, 0].imshow(s.image)
        axes[row, 0].set_ylabel(s.name, fontsize=7)
    axes[0, 0].set_title("image", fontsize=9)
    scale = ScalarMappable(Normalize(0, 1), cmap="jet")
    fig.colorbar(scale, ax=axes.ravel().tolist(), fraction=0.02, pad=0.02, label="coefficient")
    fig.suptitle(f"attention coefficients, {ckpt['arch']} epoch {ckpt['epoch']}", fontsize=9)
    return save_figure(fig, Path(out_png), dpi, tight_box=True)
