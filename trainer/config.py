"""The training configuration: one dataclass, its defaults, and how unset values resolve."""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from runtime.errors import ArgumentError
from runtime.metadata import IMAGENET_MEAN, IMAGENET_STD, ModelInfo

# The choices of the options: click's choices and every check read them from here.
LOSSES = ("bce", "dice", "combined", "focal_tversky")
AUG_PRESETS = ("plain", "standard", "crop")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
LR_SCALINGS = ("linear", "none")
BAD_SAMPLE_MODES = ("skip", "error")
SCHEDULES = ("cosine", "plateau", "constant")
OPTIMIZERS = ("adamw", "adam")
CACHE_MODES = ("ram", "none")

# The mask value of pixels left out of every loss and metric (Pascal VOC's "void"; a mask
# folder's `--ignore-index` value is read as this). Class ids stay below it.
IGNORE_INDEX = 255

# Keys of earlier versions' config.json that no longer mean anything (read and dropped).
LEGACY_KEYS = frozenset({"extra"})

# The value each recipe option had before it existed: a run whose config.json predates an
# option keeps that value when it is resumed.
LEGACY_RECIPE = {
    "schedule": "plateau",
    "warmup_epochs": 0,
    "ema": False,
    "optimizer": "adam",
    "weight_decay": 0.0,
    "erasing": 0.25,
}

# Options that may change between a run and its `--resume` without making it another run.
RESUMABLE_CHANGES = frozenset(
    {
        "epochs",
        "patience",
        "save_every",
        "workers",
        "cache",
        "compile",
        "device",
        "resume",
        "force",
        "out",
    }
)

# The quick configuration used on the built-in sample data (no `--data`): small enough to
# finish in well under three minutes on two CPU cores. Its 48 training images make 6 batches
# of 8 per epoch, too few steps for the cosine recipe (best Dice 0.30-0.90 over seeds 0-2 at
# a 3e-3 peak); batches of 4 at 1e-3 gave 0.84-0.88 (EXPERIMENTS.md, "Sample data").
SAMPLE_DEFAULTS = {"img_size": 96, "width": 16, "epochs": 30, "batch_size": 4}
DATA_DEFAULTS = {"img_size": 256, "width": 64, "epochs": 50, "batch_size": 8}

SCRATCH_LR = 1e-3
PRETRAINED_LR = 1e-4
PRETRAINED_ENCODER_LR = 1e-5


@dataclass
class DataSource:
    """Where a dataset is and how to read it: the data options of `segtrain fit`, `evaluate`,
    `plot` and `segexport evaluate` (read by `trainer.data.source.resolve_source`); all
    None/False: the built-in sample data. `TrainConfig` starts with these fields."""

    data: str | None = None
    annotations: str | None = None
    images: str | None = None
    masks: str | None = None
    val_images: str | None = None
    val_masks: str | None = None
    coco: str | None = None
    resize_masks: bool = False
    ignore_index: int | None = None

    @classmethod
    def from_options(cls, options: Any) -> DataSource:
        """The source of a config or an options dict (other keys are ignored)."""
        names = [f.name for f in dataclasses.fields(cls)]
        if isinstance(options, dict):
            values = {name: options[name] for name in names if name in options}
        else:
            values = {name: getattr(options, name) for name in names if hasattr(options, name)}
        return cls(**{k: v for k, v in values.items() if v is not None})

    @property
    def given(self) -> bool:
        """Whether any dataset was named (else the built-in sample data is meant)."""
        return any(v is not None for v in (self.data, self.images, self.coco))

    def replace(self, **changes: Any) -> DataSource:
        return dataclasses.replace(self, **changes)


@dataclass
class TrainConfig(DataSource):
    """Everything that defines a training run; `None` means "use the documented default".

    The data options come first (inherited from `DataSource`)."""

    arch: str = "unet"
    width: int | None = None
    img_size: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    encoder_lr: float | None = None
    loss: str = "combined"
    dice_weight: float = 0.7
    aug: str = "standard"
    erasing: float = 0.0
    precision: str = "auto"
    encoder: str | None = None
    encoder_weights: str | None = None
    classes: list[str] | None = None
    out: str | None = None
    resume: bool = False
    force: bool = False
    save_every: int = 10
    patience: int = 15
    seed: int = 0
    device: str = "auto"
    workers: int | None = None
    on_bad_sample: str = "skip"
    val_fraction: float = 0.2
    threshold: float = 0.5
    sync_bn: bool = False
    lr_scaling: str = "linear"
    # The recipe: chosen on the butterflies (EXPERIMENTS.md, "Training recipe").
    schedule: str = "cosine"
    warmup_epochs: int = 3
    ema: bool = True
    ema_decay: float = 0.99
    optimizer: str = "adamw"
    weight_decay: float = 0.01
    cache: str = "ram"
    compile: bool = False

    @property
    def uses_sample_data(self) -> bool:
        return self.data is None and self.images is None and self.coco is None

    @property
    def has_pretrained_encoder(self) -> bool:
        """Whether the architecture's encoder can start from pretrained (ImageNet) weights."""
        from trainer.models import model_spec  # the registry imports torch: only when asked

        return model_spec(self.arch).pretrained_encoder

    def resolved(self) -> TrainConfig:
        """A copy with every `None` default filled in (data-dependent and arch-dependent)."""
        defaults = SAMPLE_DEFAULTS if self.uses_sample_data else DATA_DEFAULTS
        cfg = dataclasses.replace(self)
        for key, value in defaults.items():
            if getattr(cfg, key) is None:
                setattr(cfg, key, value)
        if cfg.has_pretrained_encoder and cfg.encoder_weights is None:
            cfg.encoder_weights = "imagenet"
        # An encoder that starts from pretrained weights is fine-tuned gently; one that starts
        # from random weights ("none") trains like every other from-scratch model.
        from_scratch = not cfg.has_pretrained_encoder or cfg.encoder_weights == "none"
        if cfg.lr is None:
            cfg.lr = SCRATCH_LR if from_scratch else PRETRAINED_LR
        if cfg.has_pretrained_encoder and cfg.encoder_lr is None:
            if from_scratch:
                cfg.encoder_lr = cfg.lr
            else:
                cfg.encoder_lr = PRETRAINED_ENCODER_LR if self.lr is None else cfg.lr / 10
        return cfg

    def model_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `create_model`: those of the options its factory takes
        (`None` values are dropped by the registry, so the model keeps its own default)."""
        from trainer.models import model_spec

        spec = model_spec(self.arch)
        options = {
            "in_channels": 3,
            "num_classes": self.num_classes,
            "width": self.width,
            "encoder": self.encoder,
            "encoder_weights": self.encoder_weights,
        }
        return {key: value for key, value in options.items() if spec.accepts(key)}

    def model_info(self) -> ModelInfo:
        """The trained model's `ModelInfo`: classes, input size, ImageNet normalization, RGB,
        threshold (resolve the config first)."""
        return ModelInfo(
            num_classes=self.num_classes,
            classes=self.class_names,
            input_size=(self.img_size, self.img_size),
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            threshold=self.threshold,
        )

    @property
    def num_classes(self) -> int:
        """Model output channels: 1 for binary, background + named classes otherwise."""
        return 1 if not self.classes else len(self.classes) + 1

    @property
    def class_names(self) -> list[str]:
        return ["background", "foreground"] if not self.classes else ["background", *self.classes]

    @property
    def class_map(self) -> dict[str, int] | None:
        return None if not self.classes else {c: i + 1 for i, c in enumerate(self.classes)}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> TrainConfig:
        """A config from plain values; an unknown key is refused with the closest names."""
        names = [f.name for f in dataclasses.fields(cls)]
        values = {k: v for k, v in data.items() if k not in LEGACY_KEYS}
        unknown = [key for key in values if key not in names]
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, names, n=2)
                similar = f" (similar: {', '.join(close)})" if close else ""
                hints.append(f"{key!r}{similar}")
            raise ArgumentError(source, f"unknown option {', '.join(hints)}")
        return cls(**values)

    def save(self, path: Path) -> None:
        from runtime.io import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        """A saved run's config; an option its file predates takes its old value."""
        values = {**LEGACY_RECIPE, **json.loads(Path(path).read_text())}
        return cls.from_dict(values, str(path))

    @classmethod
    def default(cls, name: str) -> Any:
        """The default of option `name`, for the command line to show and use."""
        return {f.name: f.default for f in dataclasses.fields(cls)}[name]


def config_differences(saved: TrainConfig, given: dict[str, Any]) -> list[str]:
    """Options given on the command line that disagree with a saved run's configuration."""
    diffs = []
    saved_dict = saved.to_dict()
    for key, value in given.items():
        if key in RESUMABLE_CHANGES or value is None:
            continue
        if saved_dict.get(key) != value:
            diffs.append(
                f"--{key.replace('_', '-')}: run has {saved_dict.get(key)!r}, given {value!r}"
            )
    return diffs
