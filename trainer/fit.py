"""`segtrain fit`: build data, model and optimizer from a TrainConfig and run the epochs.

Reproducibility: at the start of every epoch the global torch RNG and the sampler's
generator are seeded from `(seed, epoch)`, so an epoch's shuffling and augmentation depend
only on the seed and the epoch number. A run resumed from `last.pth` therefore continues
exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from runtime.errors import SegkitError
from runtime.io import remove_stale_temporaries
from runtime.metadata import ModelInfo
from trainer.checkpoint import (
    build_checkpoint,
    clean_state_dict,
    load_checkpoint,
    save_checkpoint,
    unwrap_model,
)
from trainer.config import TrainConfig, config_differences
from trainer.data import (
    SegmentationDataset,
    build_transform,
    default_sample_dir,
    make_sample_dataset,
)
from trainer.data.source import DataSource, resolve_source
from trainer.distributed import (
    DistContext,
    ShardSampler,
    all_reduce_sum,
    broadcast_object,
    init_distributed,
    process_device,
    shutdown,
)
from trainer.engine import EpochStats, evaluate, train_one_epoch
from trainer.interrupts import SigintLatch
from trainer.losses import build_loss
from trainer.metrics import SegmentationMetrics
from trainer.models import create_model
from trainer.plots import plot_curves
from trainer.precision import resolve_device, resolve_precision
from trainer.recipe import Ema, LrSchedule, build_optimizer
from trainer.runlog import MetricsLog


class ResumeError(SegkitError, ValueError):
    """`--resume` cannot continue the run in `--out` (missing files or a different config)."""


@dataclass
class FitResult:
    run_dir: Path
    epochs_done: int
    best_epoch: int
    best_metrics: dict[str, float]
    seconds: float
    skipped_samples: list[tuple[str, str]] = field(default_factory=list)
    stopped_early: bool = False
    interrupted: bool = False
    main_process: bool = True  # False on the other ranks of a distributed run
    data: dict[str, Any] = field(default_factory=dict)  # layout, train/val samples, val source
    precision: str = "fp32"  # what the run trained in ("auto" resolved)

    def summary(self) -> str:
        best = ", ".join(f"{k} {v:.4f}" for k, v in self.best_metrics.items() if k != "loss")
        state = (
            "interrupted"
            if self.interrupted
            else ("stopped early" if self.stopped_early else "done")
        )
        line = (
            f"{state}: {self.epochs_done} epoch(s) in {self.seconds:.0f} s; best epoch "
            f"{self.best_epoch}: {best or 'n/a'}; {len(self.skipped_samples)} sample(s) skipped; "
            f"checkpoints in {self.run_dir}"
        )
        if self.interrupted:
            line += f"\nresume with: segtrain fit --out {self.run_dir} --resume"
        return line


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % 2**63


def default_run_dir(arch: str) -> Path:
    return Path("runs") / f"{arch}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def prepare_run(
    cfg: TrainConfig, given: dict[str, Any] | None = None
) -> tuple[TrainConfig, Path, dict | None]:
    """The run's resolved config, its folder, and the checkpoint to resume from (or None).

    `given` holds the options set explicitly on the command line; with `--resume` they must
    agree with the saved run (unless `--force`), except those in RESUMABLE_CHANGES.
    """
    if not cfg.resume:
        run_dir = Path(cfg.out) if cfg.out else default_run_dir(cfg.arch)
        if (run_dir / "last.pth").exists():
            raise ResumeError(
                run_dir, "holds a run already; continue it with --resume, or choose another --out"
            )
        return cfg.resolved(), run_dir, None
    if not cfg.out:
        raise ResumeError("--resume", "needs --out RUN_DIR, the folder of the run to continue")
    run_dir = Path(cfg.out)
    last = run_dir / "last.pth"
    config_path = run_dir / "config.json"
    if not last.is_file() or not config_path.is_file():
        raise ResumeError(run_dir, "nothing to resume (needs last.pth and config.json)")
    saved = TrainConfig.load(config_path)
    diffs = config_differences(saved, given or {})
    if diffs and not cfg.force:
        raise ResumeError(
            config_path,
            "the command line differs from the run being resumed:\n  "
            + "\n  ".join(diffs)
            + "\nrepeat the run's options, or pass --force to accept the new ones",
        )
    merged = saved.to_dict()
    for key, value in (given or {}).items():
        if value is not None:
            merged[key] = value
    merged.update(resume=True, out=str(run_dir))
    resolved = TrainConfig.from_dict(merged).resolved()
    return resolved, run_dir, load_checkpoint(last)


def build_data(
    cfg: TrainConfig, info: ModelInfo
) -> tuple[SegmentationDataset, SegmentationDataset, list, dict]:
    """The training and validation sets of `cfg`, transformed at `info`'s size and
    normalization, the samples skipped on the way, and what was found (layout, counts)."""
    source = DataSource.from_options(cfg)
    if cfg.uses_sample_data:
        source = source.replace(data=str(make_sample_dataset(default_sample_dir())))
    splits, problems = resolve_source(source, cfg.val_fraction, cfg.seed, cfg.on_bad_sample)
    size, norm = info.input_size, {"mean": info.mean, "std": info.std}
    common = {
        "class_map": cfg.class_map,
        "on_bad_sample": cfg.on_bad_sample,
        "cache": cfg.cache == "ram",
    }
    augment = build_transform(cfg.aug, size, train=True, erasing=cfg.erasing, **norm)
    train = SegmentationDataset(splits["train"], augment, **common)
    val = SegmentationDataset(
        splits["val"], build_transform("plain", size, train=False, **norm), **common
    )
    skipped = [(str(p), why) for p, why in problems] + train.skipped + val.skipped
    found = {
        "layout": splits.layout,
        "train_samples": len(train),
        "val_samples": len(val),
        "val_source": splits.val_source,
    }
    return train, val, skipped, found


def _default_workers(device: torch.device) -> int:
    """Loader processes: 4 on CUDA, none on the CPU. Measured on 2 cores (AVX512-BF16),
    U-Net width 16 at 128 px, training images/s of whole epochs: bf16 72 in-process, 67 with
    a persistent worker, 50 with one restarted each epoch (fp32: 38, 36, 29). The cached
    arrays are small, and a worker only takes cores from the step."""
    if device.type == "cpu":
        return 0
    return min(4, os.cpu_count() or 1)


def fit(cfg: TrainConfig, given: dict[str, Any] | None = None, progress: bool = True) -> FitResult:
    """Train according to `cfg`; writes checkpoints, metrics.csv, config.json and curves.png.

    Under torchrun (WORLD_SIZE > 1) every process runs this function; see trainer.distributed.
    """
    ctx = init_distributed(cfg.device)
    try:
        start = time.perf_counter()
        run = TrainingRun(cfg, given, progress and ctx.is_main, ctx)
        result = run.run()
        result.seconds = time.perf_counter() - start
        if ctx.is_main:
            _write_summary(run.run_dir, result)
        return result
    finally:
        shutdown(ctx)


class TrainingRun:
    """One `segtrain fit` run: the constructor builds data, model and recipe (or restores
    them from `last.pth`); `run()` trains epoch after epoch (`train_epoch`, `validate`,
    `save`) until the last epoch, early stopping or Ctrl-C."""

    def __init__(
        self, cfg: TrainConfig, given: dict[str, Any] | None, progress: bool, ctx: DistContext
    ):
        if ctx.enabled and not cfg.out and not cfg.resume:
            cfg.out = broadcast_object(str(default_run_dir(cfg.arch)), ctx)
        cfg, self.run_dir, resume_ckpt = prepare_run(cfg, given)
        self.ctx, self.progress = ctx, progress
        self.device = resolve_device(process_device(ctx, cfg.device))
        self.precision = resolve_precision(cfg.precision, self.device)
        cfg.precision = self.precision.name  # config.json records what "auto" chose
        self.cfg = cfg
        seed_everything(cfg.seed)
        self.info = cfg.model_info()
        self._build_data()
        self._build_model()
        self.first_epoch, self.best_epoch, self.best_metrics = 1, 0, {}
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume_ckpt is not None:
            if ctx.is_main:
                remove_stale_temporaries(self.run_dir)  # half-written files of a killed run
            self._restore(resume_ckpt)
            self.log = MetricsLog.resume(self.run_dir / "metrics.csv", self.first_epoch - 1)
        else:
            self.log = MetricsLog(self.run_dir / "metrics.csv")
            if ctx.is_main:
                cfg.save(self.run_dir / "config.json")
        self._wrap_distributed()
        # The module that trains: compiled when asked. `self.model` stays the plain module,
        # so the EMA, checkpoints and resume see the same parameters and state-dict keys.
        self.train_model = torch.compile(self.model) if cfg.compile else self.model

    def _build_data(self) -> None:
        cfg, ctx = self.cfg, self.ctx
        train_ds, val_ds, self.skipped, self.found = build_data(cfg, self.info)
        if self.progress:
            print(_data_line(self.found, self.precision.name), flush=True)
        workers = cfg.workers if cfg.workers is not None else _default_workers(self.device)
        cuda = self.device.type == "cuda"
        # CPU workers start again each epoch, seeded from that epoch's RNG: resumes stay
        # exact (persistent ones would draw their seeds once, at the first epoch).
        persistent = cuda and workers > 0
        loader_kw = {"num_workers": workers, "pin_memory": cuda, "persistent_workers": persistent}
        val_kw = loader_kw if cuda else {"num_workers": 0}  # plain resizes of cached arrays
        self.sampler_gen = torch.Generator()
        if ctx.enabled:
            self.train_sampler = DistributedSampler(
                train_ds, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=cfg.seed
            )
            val_sampler = ShardSampler(len(val_ds), ctx)
        else:
            self.train_sampler = RandomSampler(train_ds, generator=self.sampler_gen)
            val_sampler = None
        self.train_loader = DataLoader(
            train_ds, cfg.batch_size, sampler=self.train_sampler, **loader_kw
        )
        self.val_loader = DataLoader(val_ds, cfg.batch_size, sampler=val_sampler, **val_kw)

    def _build_model(self) -> None:
        cfg = self.cfg
        model = create_model(cfg.arch, **cfg.model_kwargs()).to(self.device)
        if self.precision.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        lr_scale = self.ctx.world_size if cfg.lr_scaling == "linear" else 1
        encoder_lr = cfg.encoder_lr * lr_scale if cfg.encoder_lr is not None else None
        self.optimizer = build_optimizer(cfg, model, cfg.lr * lr_scale, encoder_lr)
        self.schedule = LrSchedule(cfg, self.optimizer, len(self.train_loader))
        self.ema = Ema(model, cfg.ema_decay) if cfg.ema else None
        self.scaler = self.precision.grad_scaler()
        self.loss_fn = build_loss(
            cfg.loss, num_classes=cfg.num_classes, dice_weight=cfg.dice_weight
        )
        self.metrics = SegmentationMetrics(num_classes=cfg.num_classes, threshold=cfg.threshold)

    def _wrap_distributed(self) -> None:
        if not self.ctx.enabled:
            return
        if self.cfg.sync_bn:
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        self.model = DistributedDataParallel(self.model, device_ids=device_ids)

    @property
    def eval_model(self) -> torch.nn.Module:
        """The weights that are validated, saved as the checkpoint's model and exported."""
        return self.ema.model if self.ema is not None else self.model

    def run(self) -> FitResult:
        cfg, ctx = self.cfg, self.ctx
        result = FitResult(
            self.run_dir, self.first_epoch - 1, self.best_epoch, self.best_metrics, 0.0,
            self.skipped, data=self.found, main_process=ctx.is_main,
            precision=self.precision.name,
        )  # fmt: skip
        latch = SigintLatch()
        try:
            latch.install()
            for epoch in range(self.first_epoch, cfg.epochs + 1):
                stats = self.train_epoch(epoch)
                latch.check()
                val = self.validate()
                lr = self.optimizer.param_groups[-1]["lr"]
                self.schedule.after_epoch(val["dice"])
                improved = not self.best_metrics or val["dice"] > self.best_metrics["dice"]
                if improved:
                    self.best_epoch, self.best_metrics = epoch, val
                with latch.deferred():  # the log row and last.pth agree, even on Ctrl-C
                    if ctx.is_main:
                        self.save(epoch, stats, val, lr, improved)
                    result.epochs_done = epoch
                    result.best_epoch, result.best_metrics = self.best_epoch, self.best_metrics
                if self.progress:
                    print(_epoch_line(epoch, cfg.epochs, stats, val, lr), flush=True)
                latch.check()  # a Ctrl-C that an ignored exception swallowed still stops here
                if epoch - self.best_epoch >= cfg.patience:
                    result.stopped_early = True
                    break
        except KeyboardInterrupt:
            result.interrupted = True
        finally:
            latch.restore()
        return result

    def train_epoch(self, epoch: int) -> EpochStats:
        """One pass over the training data, seeded from (seed, epoch) for exact resumes."""
        cfg, ctx = self.cfg, self.ctx
        torch.manual_seed(_epoch_seed(cfg.seed, epoch) + ctx.rank)
        self.sampler_gen.manual_seed(_epoch_seed(cfg.seed, epoch))
        if ctx.enabled:
            self.train_sampler.set_epoch(epoch)
        stats = train_one_epoch(
            self.train_model, self.train_loader, self.loss_fn, self.optimizer, self.scaler,
            self.precision, self.device, epoch, after_step=self._after_step,
            progress=self.progress, desc=f"epoch {epoch}/{cfg.epochs}",
        )  # fmt: skip
        return _reduce_stats(stats, self.device) if ctx.enabled else stats

    def _after_step(self) -> None:
        self.schedule.after_step()
        if self.ema is not None:
            self.ema.update(unwrap_model(self.model))

    def validate(self) -> dict[str, float]:
        return evaluate(
            self.eval_model, self.val_loader, self.loss_fn, self.metrics, self.precision,
            self.device, reduce=all_reduce_sum if self.ctx.enabled else None,
        )  # fmt: skip

    def save(
        self, epoch: int, stats: EpochStats, val: dict[str, float], lr: float, improved: bool
    ) -> None:
        """Log the epoch and write last.pth (and best.pth, epoch_N.pth when due)."""
        row = {"epoch": epoch, "train_loss": stats.loss, "val_loss": val["loss"], "lr": lr}
        row.update(_metric_cols(val), seconds=stats.seconds, images_per_s=stats.images_per_s)
        self.log.append(row)
        ckpt = build_checkpoint(
            self.eval_model, info=self.info, epoch=epoch, metrics=val,
            train_state=self._train_state(),
        )  # fmt: skip
        save_checkpoint(ckpt, self.run_dir / "last.pth")
        if improved:
            save_checkpoint(ckpt, self.run_dir / "best.pth")
        if self.cfg.save_every and epoch % self.cfg.save_every == 0:
            save_checkpoint(ckpt, self.run_dir / f"epoch_{epoch}.pth")
        plot_curves([("run", self.log.rows)], self.run_dir / "curves.png")

    def _train_state(self) -> dict:
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        state = {
            "precision": self.precision.name,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng,
            "train": {
                "best_epoch": self.best_epoch,
                "best_metrics": {k: float(v) for k, v in self.best_metrics.items()},
                "seed": self.cfg.seed,
            },
            "train_config": self.cfg.to_dict(),
        }
        if self.ema is not None:  # the checkpoint's model is the average: keep the raw weights
            state["raw_model"] = clean_state_dict(unwrap_model(self.model).state_dict())
            state["ema"] = self.ema.state_dict()
        return state

    def _restore(self, ckpt: dict) -> None:
        """Load model and training state of `last.pth`; the next epoch follows its own."""
        if self.ema is not None:
            self.model.load_state_dict(ckpt["raw_model"])
            self.ema.load_state_dict(ckpt["model"], ckpt["ema"])
        else:
            self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.schedule.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if "cuda" in ckpt["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
        train = ckpt["train"]
        self.first_epoch = ckpt["epoch"] + 1
        self.best_epoch, self.best_metrics = train["best_epoch"], dict(train["best_metrics"])


def _reduce_stats(stats: EpochStats, device: torch.device) -> EpochStats:
    """The epoch's mean loss over all ranks, and images/s of the whole job."""
    sums = torch.tensor(
        [stats.loss * stats.images, stats.images, stats.skipped_steps],
        dtype=torch.float64,
        device=device,
    )
    loss_sum, images, skipped = all_reduce_sum(sums).tolist()
    return EpochStats(loss_sum / max(images, 1), int(images), stats.seconds, int(skipped))


def _data_line(found: dict[str, Any], precision: str) -> str:
    return (
        f"data: {found['layout']} layout, {found['train_samples']} training and "
        f"{found['val_samples']} validation samples (validation: {found['val_source']}); "
        f"precision: {precision}"
    )


def _metric_cols(val: dict[str, float]) -> dict[str, float]:
    return {k: val[k] for k in ("acc", "dice", "iou", "map")}


def _epoch_line(
    epoch: int, epochs: int, stats: EpochStats, val: dict[str, float], lr: float
) -> str:
    return (
        f"epoch {epoch}/{epochs}  train_loss {stats.loss:.4f}  val_loss {val['loss']:.4f}  "
        f"dice {val['dice']:.4f}  iou {val['iou']:.4f}  map {val['map']:.4f}  "
        f"acc {val['acc']:.4f}  "
        f"lr {lr:.2g}  {stats.images_per_s:.1f} img/s  {stats.seconds:.1f} s"
    )


def _write_summary(run_dir: Path, result: FitResult) -> None:
    from runtime.io import atomic_write_text

    summary = {
        "epochs_done": result.epochs_done,
        "best_epoch": result.best_epoch,
        "best_metrics": result.best_metrics,
        "seconds": round(result.seconds, 2),
        "stopped_early": result.stopped_early,
        "interrupted": result.interrupted,
        "precision": result.precision,
        **{key: result.data[key] for key in ("layout", "train_samples", "val_samples")},
        "skipped_samples": [{"file": f, "problem": p} for f, p in result.skipped_samples],
    }
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
