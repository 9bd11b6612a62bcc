"""Training throughput: one step in each precision, a whole `segtrain fit` epoch, the loader.

- `test_training_step`: one step of `unet` (width 16 at 128 px, and width 64 at 256 px),
  batch 8, AdamW, the `combined` loss, in each precision `segtrain fit` can pick: fp32,
  bf16 autocast + channels_last on the CPU (skipped where the CPU has no native bf16),
  fp32 and fp16 AMP on CUDA. The precisions come from `trainer.precision`, so this times
  what `fit` runs.
- `test_compiled_training_step`: the width-16 128 px step through torch.compile, as
  `segtrain fit --compile` trains, compiled before it is timed; it prints its ratio to the
  eager step of the same precision.
- `test_fit_epoch`: one training epoch of the run `segtrain fit --arch unet --width 16
  --img-size 128` makes on the butterflies (`FIT_SAMPLES` of them), with `--precision auto`
  (the default) and `--precision fp32`, loader, EMA and schedule included. On a CPU with
  native bf16 the default must train at least `BF16_GAIN` times the images/s of fp32.
- `test_data_loader`: the training loader of that run (decoded once, cached just above
  128 px, `standard` augmentation) must deliver at least `LOADER_MARGIN` times the images/s
  of the fastest 128 px step of the same run, or training would wait for data.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, RandomSampler

from benchmarks.devices import NO_CUDA, cuda_available
from benchmarks.inputs import BUTTERFLY
from benchmarks.matrix import round_budget_seconds
from benchmarks.measure import RESULTS, cuda_sync, no_sync, record, time_rounds
from runtime.cpu import has_native_bf16, instruction_set
from trainer.config import TrainConfig
from trainer.data import SegmentationDataset, build_transform, make_sample_dataset
from trainer.data.discover import resolve_splits
from trainer.distributed import DistContext
from trainer.fit import TrainingRun, _default_workers
from trainer.losses import build_loss
from trainer.models import create_model
from trainer.precision import resolve_precision

ARCH, BATCH = "unet", 8
SHAPES = {"w16-128": (16, 128), "w64-256": (64, 256)}
COMPILE_SHAPE = "w16-128"
LOADER_SIZE = 128
LOADER_SAMPLES = 96  # decoded once into the dataset's cache
LOADER_BATCHES = 12
LOADER_MARGIN = 3.0
FIT_SAMPLES = 96
BF16_GAIN = 1.8
# mode -> (device, precision name)
PRECISIONS = {
    "cpu-fp32": ("cpu", "fp32"),
    "cpu-bf16": ("cpu", "bf16"),
    "cuda-fp32": ("cuda", "fp32"),
    "cuda-amp": ("cuda", "fp16"),
}
NO_BF16 = "the CPU has no native bf16 (AMX or AVX512-BF16): fit trains in fp32 here"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """The butterfly dataset, or a generated labelme dataset when it is absent."""
    if BUTTERFLY.is_dir():
        return BUTTERFLY
    return make_sample_dataset(tmp_path_factory.mktemp("bench_data") / "sample", seed=0)


@pytest.fixture(scope="module")
def loader(data_dir) -> DataLoader:
    """The training loader of `segtrain fit --aug standard --img-size 128 --batch-size 8`."""
    splits, _ = resolve_splits(data_dir)
    dataset = SegmentationDataset(
        splits["train"][:LOADER_SAMPLES],
        build_transform("standard", (LOADER_SIZE, LOADER_SIZE), train=True),
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


def _skip_unless_runs(device: str, precision: str) -> None:
    if device == "cuda" and not cuda_available():
        pytest.skip(NO_CUDA)
    if device == "cpu" and precision == "bf16" and not has_native_bf16():
        pytest.skip(NO_BF16)


def _training_step(
    mode: str, shape: str, loader: DataLoader, compiled: bool = False
) -> Callable[[], None]:
    """One optimizer step of `segtrain fit`'s kind in `mode`, on a fixed batch of `loader`
    (resized to `shape`); through torch.compile when `compiled`, as `--compile` trains."""
    device, name = PRECISIONS[mode]
    width, size = SHAPES[shape]
    precision = resolve_precision(name, torch.device(device))
    torch.manual_seed(0)
    model = create_model(ARCH, width=width).to(device).train()
    images, masks = (t.to(device) for t in next(iter(loader)))
    if size != LOADER_SIZE:
        images = torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear")
        masks = torch.nn.functional.interpolate(masks[:, None].float(), size=(size, size))
        masks = masks[:, 0].long()
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = precision.grad_scaler()
    loss_fn = build_loss("combined")
    forward = torch.compile(model) if compiled else model

    def step() -> None:
        with precision.autocast():
            logits = forward(images)
        loss = loss_fn(logits.float(), masks)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    if compiled:
        step()  # compiling takes tens of seconds: not part of the timed rounds
    return step


def _time_step(benchmark, mode: str, shape: str, loader: DataLoader, compiled: bool) -> None:
    device, name = PRECISIONS[mode]
    _skip_unless_runs(device, name)
    step = _training_step(mode, shape, loader, compiled)
    sync = cuda_sync if device == "cuda" else no_sync
    times = time_rounds(benchmark, step, round_budget_seconds(), sync=sync)
    width, size = SHAPES[shape]
    record(
        benchmark, times, backend=f"train_step_{name}" + ("_compiled" if compiled else ""),
        arch=f"{ARCH}-w{width}", size=size, batch=BATCH, flops_per_image=None,
        peak_gflops=None, device=device, cpu=instruction_set(),
    )  # fmt: skip


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("mode", list(PRECISIONS))
def test_training_step(benchmark, mode, shape, loader):
    benchmark.group = f"training step {shape}"
    _time_step(benchmark, mode, shape, loader, compiled=False)


@pytest.mark.parametrize("mode", list(PRECISIONS))
def test_compiled_training_step(benchmark, mode, loader):
    """`segtrain fit --compile`: the w16-128 step through torch.compile, beside the eager
    step of the same precision (run `test_training_step` with it for the ratio)."""
    benchmark.group = f"training step {COMPILE_SHAPE}"
    _time_step(benchmark, mode, COMPILE_SHAPE, loader, compiled=True)
    report_compile_gain(mode)


def report_compile_gain(mode: str) -> None:
    """Print compiled / eager images/s for `mode`'s precision when both were timed."""
    device, name = PRECISIONS[mode]
    size = SHAPES[COMPILE_SHAPE][1]
    by_name = {r["backend"]: r for r in RESULTS if r["device"] == device and r["size"] == size}
    eager, compiled = by_name.get(f"train_step_{name}"), by_name.get(f"train_step_{name}_compiled")
    if eager is None or compiled is None:
        print(f"compile gain ({mode}) not reported: the eager step did not run before it")
        return
    ratio = compiled["images_per_s"] / eager["images_per_s"]
    print(f"training step {mode}, --compile / eager: {ratio:.2f}x (CPU: {compiled['cpu']})")


@pytest.fixture(scope="module")
def fit_data(data_dir, tmp_path_factory) -> Path:
    """`FIT_SAMPLES` training images of the benchmark data, as a labelme folder."""
    splits, _ = resolve_splits(data_dir)
    folder = tmp_path_factory.mktemp("fit_data")
    for sample in splits["train"][:FIT_SAMPLES]:
        for source in (sample.image, sample.annotation):
            (folder / source.name).symlink_to(source.resolve())
    return folder


@pytest.mark.parametrize("precision", ["auto", "fp32"])
def test_fit_epoch(benchmark, precision, fit_data, tmp_path):
    """One epoch of the default 128 px run, from `fit`'s own `TrainingRun`."""
    benchmark.group = "fit epoch"
    cfg = TrainConfig(
        data=str(fit_data), arch=ARCH, width=16, img_size=LOADER_SIZE, epochs=1000,
        batch_size=BATCH, precision=precision, out=str(tmp_path / "run"),
    )  # fmt: skip
    run = TrainingRun(cfg, None, progress=False, ctx=DistContext())
    epochs = iter(range(1, 1001))
    times = time_rounds(benchmark, lambda: run.train_epoch(next(epochs)), round_budget_seconds())
    images = len(run.train_loader.dataset)
    record(
        benchmark, times, backend=f"fit_epoch_{precision}", arch=f"{ARCH}-w16", size=LOADER_SIZE,
        batch=BATCH, images=images, flops_per_image=None, peak_gflops=None, device="cpu",
        precision_used=run.precision.name, cpu=instruction_set(),
    )  # fmt: skip
    if precision == "fp32":
        check_bf16_gain()


def check_bf16_gain() -> None:
    """The default run's images/s at least `BF16_GAIN` x fp32's, where bf16 is native."""
    by_name = {r["backend"]: r for r in RESULTS if r["backend"].startswith("fit_epoch_")}
    if len(by_name) < 2:
        print("bf16 gain not checked: the two fit_epoch cases did not both run")
        return
    auto, fp32 = by_name["fit_epoch_auto"], by_name["fit_epoch_fp32"]
    ratio = auto["images_per_s"] / fp32["images_per_s"]
    print(
        f"fit epoch, --precision auto ({auto['precision_used']}) / fp32: {ratio:.2f}x "
        f"(CPU: {auto['cpu']})"
    )
    if auto["precision_used"] == "bf16":
        assert ratio >= BF16_GAIN, (
            f"the default (bf16) run trains at {auto['images_per_s']:.1f} images/s, only "
            f"{ratio:.2f}x fp32's {fp32['images_per_s']:.1f} (goal {BF16_GAIN}x)"
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
        size=LOADER_SIZE,
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
    """The loader's images/s at least `LOADER_MARGIN` x the fastest 128 px step's."""
    steps = [
        r for r in RESULTS if r["backend"].startswith("train_step_") and r["size"] == LOADER_SIZE
    ]
    if not steps:
        print("loader margin not checked: no 128 px test_training_step ran before it")
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
