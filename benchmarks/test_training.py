"""Training throughput: one fp32 (and, on a GPU, AMP) training step, and the data loader.

The step is `unet` width 64 at 256 px, batch 8, Adam, the `combined` loss, on a real batch
from the loader. The loader is the one `segtrain fit` builds for the butterfly data (the
`standard` augmentation, its default worker count on this device), timed over
`LOADER_BATCHES` batches. It must deliver at least `LOADER_MARGIN` times the images/s of the
fastest training step of the same run (checked after the loader's timing), or training would
wait for data.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, RandomSampler

from benchmarks.devices import NO_CUDA, cuda_available
from benchmarks.inputs import BUTTERFLY
from benchmarks.matrix import round_budget_seconds
from benchmarks.measure import RESULTS, cuda_sync, no_sync, record, time_rounds
from trainer.data import SegmentationDataset, build_transform, make_sample_dataset
from trainer.data.discover import resolve_splits
from trainer.fit import _default_workers
from trainer.losses import build_loss

ARCH, SIZE, BATCH = "unet", 256, 8
LOADER_SAMPLES = 96  # decoded once into the dataset's cache
LOADER_BATCHES = 6
LOADER_MARGIN = 3.0
PRECISIONS = {"cpu-fp32": ("cpu", False), "cuda-fp32": ("cuda", False), "cuda-amp": ("cuda", True)}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """The butterfly dataset, or a generated labelme dataset when it is absent."""
    if BUTTERFLY.is_dir():
        return BUTTERFLY
    return make_sample_dataset(tmp_path_factory.mktemp("bench_data") / "sample", seed=0)


@pytest.fixture(scope="module")
def loader(data_dir) -> DataLoader:
    """The training loader of `segtrain fit --aug standard --img-size 256 --batch-size 8`."""
    splits, _ = resolve_splits(data_dir)
    dataset = SegmentationDataset(
        splits["train"][:LOADER_SAMPLES], build_transform("standard", (SIZE, SIZE), train=True)
    )
    device = torch.device("cuda" if cuda_available() else "cpu")
    workers = _default_workers(device)
    return DataLoader(
        dataset,
        batch_size=BATCH,
        sampler=RandomSampler(dataset, generator=torch.Generator().manual_seed(0)),
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )


@pytest.mark.parametrize("mode", list(PRECISIONS))
def test_training_step(benchmark, mode, models, loader, peak_gflops):
    device, amp = PRECISIONS[mode]
    if device == "cuda" and not cuda_available():
        pytest.skip(NO_CUDA)
    benchmark.group = "training"
    model = copy.deepcopy(models.model(ARCH)).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(device, enabled=amp)
    loss_fn = build_loss("combined")
    images, masks = (t.to(device) for t in next(iter(loader)))

    def step() -> None:
        with torch.autocast(device, dtype=torch.float16, enabled=amp):
            logits = model(images)
        loss = loss_fn(logits.float(), masks)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    sync = cuda_sync if device == "cuda" else no_sync
    times = time_rounds(benchmark, step, round_budget_seconds(), sync=sync)
    record(
        benchmark,
        times,
        backend=f"train_step_{'amp' if amp else 'fp32'}",
        arch=ARCH,
        size=SIZE,
        batch=BATCH,
        flops_per_image=None,  # forward FLOPs only are counted; a step is roughly 3x those
        peak_gflops=peak_gflops if device == "cpu" else None,
        device=device,
    )


def test_data_loader(benchmark, loader, data_dir):
    benchmark.group = "training"

    def batches() -> None:
        for index, _ in enumerate(loader, start=1):
            if index == LOADER_BATCHES:
                break

    times = time_rounds(benchmark, batches, round_budget_seconds())
    record(
        benchmark,
        times,
        backend="data_loader",
        arch="-",
        size=SIZE,
        batch=BATCH,
        images=BATCH * LOADER_BATCHES,
        flops_per_image=None,
        peak_gflops=None,
        device="cpu",
        data=str(data_dir),
        workers=loader.num_workers,
    )
    check_loader_margin()


def check_loader_margin() -> None:
    """The loader's images/s at least `LOADER_MARGIN` x the fastest training step's of this run."""
    steps = [r for r in RESULTS if r["backend"].startswith("train_step_")]
    if not steps:
        print("loader margin not checked: no test_training_step ran before it")
        return
    loader = next(r for r in reversed(RESULTS) if r["backend"] == "data_loader")
    step = max(steps, key=lambda r: r["images_per_s"])
    ratio = loader["images_per_s"] / step["images_per_s"]
    name = f"{step['backend']} on {step['device']}"
    print(f"data loader / {name}: {ratio:.1f}x (must be >= {LOADER_MARGIN}x)")
    assert ratio >= LOADER_MARGIN, (
        f"the data loader gives {loader['images_per_s']:.1f} images/s, only {ratio:.1f}x the "
        f"{name} step's {step['images_per_s']:.1f} (need {LOADER_MARGIN}x)"
    )
