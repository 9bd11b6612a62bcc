"""`segbench report RESULTS.json [-o DIR]`: a Markdown table and a PNG chart of a benchmark run.

`segbench machine [-o FILE]` describes the machine (CPU, cores, versions, load);
`segbench formats --ckpt best.pth --data DIR` compares every format and precision this
machine runs (`benchmarks.formats`).

RESULTS.json is what `pytest benchmarks/ --benchmark-only --benchmark-json=RESULTS.json`
writes; each case's numbers come from its `extra_info` (see `benchmarks.measure.record`).
Writes DIR/results.md and DIR/results.png (DIR defaults to the JSON file's folder).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from benchmarks.machine import describe
from benchmarks.targets import target_lines
from runtime.cli_errors import CONTEXT_SETTINGS, SegkitGroup
from runtime.errors import SegkitError
from runtime.io import atomic_write_text

COLUMNS = (
    ("case", "case"),
    ("backend", "backend"),
    ("arch", "arch"),
    ("size", "size"),
    ("batch", "batch"),
    ("p50_ms", "p50 ms"),
    ("p90_ms", "p90 ms"),
    ("p99_ms", "p99 ms"),
    ("images_per_s", "images/s"),
    ("gflops_per_s", "GFLOP/s"),
    ("efficiency", "% of peak"),
    ("load_1min", "load"),
)


class ReportError(SegkitError, ValueError):
    """A results file that cannot be reported; the message names the file."""


def load_rows(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The recorded cases of a pytest-benchmark JSON file, and its machine_info."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise ReportError(path, "no such results file") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReportError(path, f"not a readable JSON file ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ReportError(path, "not a pytest-benchmark JSON file (no 'benchmarks' list)")
    rows = []
    for bench in data["benchmarks"]:
        info = bench.get("extra_info") or {}
        if "backend" not in info:
            continue  # a benchmark that is not a segkit case
        name = str(bench.get("name", "?"))
        rows.append({**info, "case": name.removeprefix("test_")})
    return rows, data.get("machine_info") or {}


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "efficiency":
        return f"{100 * value:.1f}"
    if isinstance(value, float):
        return f"{value:.1f}" if value >= 10 else f"{value:.2f}"
    return str(value)


def _load(values: Any) -> str:
    if not isinstance(values, (list, tuple)):
        return "?"
    return ", ".join(f"{float(v):.2f}" for v in values)


def markdown(rows: list[dict[str, Any]], machine: dict[str, Any], source: str) -> str:
    """The report: machine summary, the table of every case, and the target ratios."""
    segkit = machine.get("segkit") or {}
    cpu = (machine.get("cpu") or {}).get("brand_raw", "unknown CPU")
    peaks = sorted({f"{r['peak_gflops']:.0f}" for r in rows if r.get("peak_gflops")})
    lines = [
        "# segkit benchmark results",
        "",
        f"- source: `{source}`",
        f"- machine: {cpu}, {segkit.get('nproc', '?')} cores "
        f"(torch {segkit.get('torch', '?')} with {segkit.get('torch_threads', '?')} threads, "
        f"onnxruntime {segkit.get('onnxruntime', '?')})",
        f"- GPU: {segkit.get('cuda_device') or 'none'}",
        f"- load average when the run ended (1, 5, 15 min): {_load(segkit.get('load_average'))}",
        f"- fp32 matmul peak measured at the start of the run (GFLOP/s): {', '.join(peaks) or '-'}",
        "- load: the 1-minute load average when each case finished (the machine is shared)",
        f"- inputs: {segkit.get('inputs', '?')}",
        "",
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "| " + " | ".join("---" for _ in COLUMNS) + " |",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_cell(key, row.get(key)) for key, _ in COLUMNS) + " |")
    lines += ["", "## Targets (ratios within this run)", ""]
    lines += [f"- {line}" for line in target_lines(rows) or ["no target case in this run"]]
    return "\n".join(lines) + "\n"


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    """A horizontal bar chart of images/s per case (log scale), one colour per backend."""
    import matplotlib
    from matplotlib.figure import Figure

    backends = sorted({r["backend"] for r in rows})
    colours = {b: matplotlib.colormaps["tab10"](i % 10) for i, b in enumerate(backends)}
    labels = [f"{r['backend']}  {r['arch']} {r['size']}px b{r['batch']}" for r in rows]
    values = [r["images_per_s"] for r in rows]
    figure = Figure(figsize=(9, 1.2 + 0.32 * len(rows)))
    axes = figure.subplots()
    axes.barh(range(len(rows)), values, color=[colours[r["backend"]] for r in rows])
    axes.set_yticks(range(len(rows)), labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.set_xlabel("images / s (log scale)")
    axes.set_title("segkit benchmarks: throughput per case")
    for index, value in enumerate(values):
        axes.text(value, index, f" {value:.2f}", va="center", fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def write_report(results: Path, out_dir: Path) -> tuple[Path, Path]:
    """Write `results.md` and `results.png` for `results` into `out_dir`; returns both paths."""
    rows, machine = load_rows(results)
    if not rows:
        raise ReportError(results, "no segkit benchmark cases in this file")
    out_dir.mkdir(parents=True, exist_ok=True)
    table, image = out_dir / "results.md", out_dir / "results.png"
    table.write_text(markdown(rows, machine, results.name))
    chart(rows, image)
    return table, image


@click.group(cls=SegkitGroup, context_settings=CONTEXT_SETTINGS)
def main() -> None:
    """Reports of segkit benchmark runs."""


@main.command("report")
@click.argument("results", type=click.Path(path_type=Path))
@click.option(
    "-o", "--out", type=click.Path(path_type=Path, file_okay=False),
    help="Output folder [default: the JSON file's].",
)  # fmt: skip
def report_command(results: Path, out: Path | None) -> None:
    """Markdown table + PNG chart of a pytest-benchmark JSON file (--benchmark-json)."""
    table, image = write_report(results, out or results.parent)
    click.echo(f"wrote {table} and {image}")
    click.echo("\n".join(target_lines(load_rows(results)[0])))


@main.command("machine")
@click.option("-o", "--out", type=click.Path(path_type=Path, dir_okay=False),
              help="File [default: stdout].")  # fmt: skip
def machine_command(out: Path | None) -> None:
    """Describe this machine (CPU, instruction set, versions, load)."""
    text = describe()
    if out is None:
        click.echo(text, nl=False)
        return
    atomic_write_text(out, text)
    click.echo(f"wrote {out}")


@main.command("formats")
@click.option("--ckpt", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Checkpoint (.pth) to export.")  # fmt: skip
@click.option("--data", required=True, type=click.Path(file_okay=False),
              help="Dataset: its training images calibrate INT8, its validation split "
              "is scored.")  # fmt: skip
@click.option("-o", "--out", type=click.Path(path_type=Path, file_okay=False),
              help="Folder for the exports, formats.jsonl and formats.md "
              "[default: formats/ beside the checkpoint].")  # fmt: skip
@click.option("--rounds", type=click.IntRange(min=1), default=5, help="Timed runs per figure.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads.")
@click.option("--calib-n", type=click.IntRange(min=1), default=64, help="INT8 calibration images.")
def formats_command(ckpt: Path, data: str, out: Path | None, rounds: int, threads: int | None,
                    calib_n: int) -> None:  # fmt: skip
    """Export CKPT to every format and precision this machine runs and compare them: file
    size, Dice (native size) against PyTorch's, batch-1 latency, images/s at batch 8."""
    from benchmarks.formats import run_formats, table

    out = out or ckpt.parent / "formats"
    rows = run_formats(ckpt, data, out, rounds=rounds, threads=threads, calib_n=calib_n,
                       echo=click.echo)  # fmt: skip
    click.echo(table(rows))
    click.echo(f"wrote {out / 'formats.md'} and {out / 'formats.jsonl'}")


if __name__ == "__main__":
    main()
