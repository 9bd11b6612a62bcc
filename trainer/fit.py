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
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from runtime.errors import SegkitError
from runtime.io import remove_stale_temporaries
from runtime.metadata import ModelInfo
from trainer.checkpoint import build_checkpoint, load_checkpoint, save_checkpoint
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
from trainer.runlog import MetricsLog

SCHEDULER_PATIENCE = 5
SCHEDULER_FACTOR = 0.5


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
    train = SegmentationDataset(
        splits["train"],
        build_transform(cfg.aug, size, train=True, **norm),
        class_map=cfg.class_map,
        on_bad_sample=cfg.on_bad_sample,
    )
    val = SegmentationDataset(
        splits["val"],
        build_transform("plain", size, train=False, **norm),
        class_map=cfg.class_map,
        on_bad_sample=cfg.on_bad_sample,
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
    if device.type == "cpu":
        return 0  # the model already uses every core; cached data makes loading cheap
    return min(4, os.cpu_count() or 1)


def fit(cfg: TrainConfig, given: dict[str, Any] | None = None, progress: bool = True) -> FitResult:
    """Train according to `cfg`; writes checkpoints, metrics.csv, config.json and curves.png.

    Under torchrun (WORLD_SIZE > 1) every process runs this function; see trainer.distributed.
    """
    ctx = init_distributed(cfg.device)
    try:
        return _fit(cfg, given, progress and ctx.is_main, ctx)
    finally:
        shutdown(ctx)


def _fit(
    cfg: TrainConfig, given: dict[str, Any] | None, progress: bool, ctx: DistContext
) -> FitResult:
    start = time.perf_counter()
    if ctx.enabled and not cfg.out and not cfg.resume:
        cfg.out = broadcast_object(str(default_run_dir(cfg.arch)), ctx)
    cfg, run_dir, resume_ckpt = prepare_run(cfg, given)
    device = resolve_device(process_device(ctx, cfg.device))
    precision = resolve_precision(cfg.precision, device)
    channels_last = device.type == "cuda"
    seed_everything(cfg.seed)

    info = cfg.model_info()
    train_ds, val_ds, skipped, found = build_data(cfg, info)
    if progress:
        print(_data_line(found), flush=True)
    workers = cfg.workers if cfg.workers is not None else _default_workers(device)
    sampler_gen = torch.Generator()
    loader_kw = {
        "num_workers": workers,
        "pin_memory": device.type == "cuda",
        "persistent_workers": workers > 0,
    }
    if ctx.enabled:
        train_sampler = DistributedSampler(
            train_ds, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=cfg.seed
        )
        val_sampler = ShardSampler(len(val_ds), ctx)
    else:
        train_sampler = RandomSampler(train_ds, generator=sampler_gen)
        val_sampler = None
    train_loader = DataLoader(train_ds, cfg.batch_size, sampler=train_sampler, **loader_kw)
    val_loader = DataLoader(val_ds, cfg.batch_size, sampler=val_sampler, **loader_kw)

    model = create_model(cfg.arch, **cfg.model_kwargs()).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    lr_scale = ctx.world_size if cfg.lr_scaling == "linear" else 1
    encoder_lr = cfg.encoder_lr * lr_scale if cfg.encoder_lr is not None else None
    optimizer = torch.optim.Adam(model.parameter_groups(cfg.lr * lr_scale, encoder_lr))
    scheduler = ReduceLROnPlateau(
        optimizer, mode="max", patience=SCHEDULER_PATIENCE, factor=SCHEDULER_FACTOR
    )
    scaler = precision.grad_scaler()
    loss_fn = build_loss(cfg.loss, num_classes=cfg.num_classes, dice_weight=cfg.dice_weight)
    metrics = SegmentationMetrics(num_classes=cfg.num_classes, threshold=cfg.threshold)

    first_epoch, best_epoch, best_metrics = 1, 0, {}
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume_ckpt is not None:
        if ctx.is_main:
            remove_stale_temporaries(run_dir)  # half-written files of a killed run
        first_epoch, best_epoch, best_metrics = _restore(
            resume_ckpt, model, optimizer, scheduler, scaler
        )
        log = MetricsLog.resume(run_dir / "metrics.csv", first_epoch - 1)
    else:
        log = MetricsLog(run_dir / "metrics.csv")
        if ctx.is_main:
            cfg.save(run_dir / "config.json")
    if ctx.enabled:
        if cfg.sync_bn:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        device_ids = [device.index] if device.type == "cuda" else None
        model = DistributedDataParallel(model, device_ids=device_ids)
    reduce = all_reduce_sum if ctx.enabled else None

    result = FitResult(run_dir, first_epoch - 1, best_epoch, best_metrics, 0.0, skipped)
    result.data = found
    result.main_process = ctx.is_main
    epoch = first_epoch
    latch = SigintLatch()
    try:
        latch.install()
        for epoch in range(first_epoch, cfg.epochs + 1):
            torch.manual_seed(_epoch_seed(cfg.seed, epoch) + ctx.rank)
            sampler_gen.manual_seed(_epoch_seed(cfg.seed, epoch))
            if ctx.enabled:
                train_sampler.set_epoch(epoch)
            stats: EpochStats = train_one_epoch(
                model, train_loader, loss_fn, optimizer, scaler, precision, device, epoch,
                channels_last=channels_last, progress=progress, desc=f"epoch {epoch}/{cfg.epochs}",
            )  # fmt: skip
            latch.check()
            if ctx.enabled:
                stats = _reduce_stats(stats, device)
            val = evaluate(
                model, val_loader, loss_fn, metrics, precision, device,
                channels_last=channels_last, reduce=reduce,
            )  # fmt: skip
            lr = optimizer.param_groups[-1]["lr"]
            scheduler.step(val["dice"])
            row = {"epoch": epoch, "train_loss": stats.loss, "val_loss": val["loss"], "lr": lr}
            row.update(_metric_cols(val), seconds=stats.seconds, images_per_s=stats.images_per_s)
            improved = not best_metrics or val["dice"] > best_metrics["dice"]
            if improved:
                best_epoch, best_metrics = epoch, val
            if ctx.is_main:
                log.append(row)
                train_state = _train_state(
                    optimizer, scheduler, scaler, cfg, best_epoch, best_metrics
                )
                ckpt = build_checkpoint(
                    model, info=info, epoch=epoch, metrics=val, train_state=train_state
                )
                save_checkpoint(ckpt, run_dir / "last.pth")
                if improved:
                    save_checkpoint(ckpt, run_dir / "best.pth")
                if cfg.save_every and epoch % cfg.save_every == 0:
                    save_checkpoint(ckpt, run_dir / f"epoch_{epoch}.pth")
                plot_curves([("run", log.rows)], run_dir / "curves.png")
            result.epochs_done = epoch
            result.best_epoch, result.best_metrics = best_epoch, best_metrics
            if progress:
                print(_epoch_line(epoch, cfg.epochs, stats, val, lr), flush=True)
            latch.check()  # a Ctrl-C that an ignored exception swallowed still stops here
            if epoch - best_epoch >= cfg.patience:
                result.stopped_early = True
                break
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        latch.restore()
    result.seconds = time.perf_counter() - start
    if ctx.is_main:
        _write_summary(run_dir, result)
    return result


def _reduce_stats(stats: EpochStats, device: torch.device) -> EpochStats:
    """The epoch's mean loss over all ranks, and images/s of the whole job."""
    sums = torch.tensor(
        [stats.loss * stats.images, stats.images, stats.skipped_steps],
        dtype=torch.float64,
        device=device,
    )
    loss_sum, images, skipped = all_reduce_sum(sums).tolist()
    return EpochStats(loss_sum / max(images, 1), int(images), stats.seconds, int(skipped))


def _data_line(found: dict[str, Any]) -> str:
    return (
        f"data: {found['layout']} layout, {found['train_samples']} training and "
        f"{found['val_samples']} validation samples (validation: {found['val_source']})"
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


def _train_state(
    optimizer, scheduler, scaler, cfg: TrainConfig, best_epoch: int, best_metrics: dict
) -> dict:
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": rng,
        "train": {
            "best_epoch": best_epoch,
            "best_metrics": {k: float(v) for k, v in best_metrics.items()},
            "seed": cfg.seed,
        },
        "train_config": cfg.to_dict(),
    }


def _restore(ckpt: dict, model, optimizer, scheduler, scaler) -> tuple[int, int, dict]:
    """Load model and training state; returns (first epoch to run, best epoch, best metrics)."""
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    scaler.load_state_dict(ckpt["scaler"])
    torch.set_rng_state(ckpt["rng"]["torch"])
    if "cuda" in ckpt["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
    train = ckpt["train"]
    return ckpt["epoch"] + 1, train["best_epoch"], dict(train["best_metrics"])


def _write_summary(run_dir: Path, result: FitResult) -> None:
    from runtime.io import atomic_write_text

    summary = {
        "epochs_done": result.epochs_done,
        "best_epoch": result.best_epoch,
        "best_metrics": result.best_metrics,
        "seconds": round(result.seconds, 2),
        "stopped_early": result.stopped_early,
        "interrupted": result.interrupted,
        **{key: result.data[key] for key in ("layout", "train_samples", "val_samples")},
        "skipped_samples": [{"file": f, "problem": p} for f, p in result.skipped_samples],
    }
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
