"""`segbench report RESULTS.json [-o DIR]`: a Markdown table and a PNG chart of a benchmark run.

`segbench machine [-o FILE]` describes the machine (CPU, cores, versions, load).

RESULTS.json is what `pytest benchmarks/ --benchmark-only --benchmark-json=RESULTS.json`
writes; each case's numbers come from its `extra_info` (see `benchmarks.measure.record`).
Writes DIR/results.md and DIR/results.png (DIR defaults to the JSON file's folder).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.machine import describe
from benchmarks.targets import target_lines
from runtime.errors import SegkitError

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="segbench", description="Reports of segkit benchmark runs."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser(
        "report", help="Markdown table + PNG chart of a pytest-benchmark JSON file"
    )
    report.add_argument("results", type=Path, help="the --benchmark-json file of a run")
    report.add_argument(
        "-o", "--out", type=Path, default=None, help="output folder (default: the JSON's)"
    )
    machine = commands.add_parser("machine", help="describe this machine (CPU, versions, load)")
    machine.add_argument("-o", "--out", type=Path, default=None, help="file (default: stdout)")
    args = parser.parse_args(argv)
    if args.command == "machine":
        return _machine(args.out)
    try:
        table, image = write_report(args.results, args.out or args.results.parent)
    except (ReportError, OSError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {table} and {image}")
    print("\n".join(target_lines(load_rows(args.results)[0])))
    return 0


def _machine(out: Path | None) -> int:
    text = describe()
    if out is None:
        print(text, end="")
        return 0
    try:
        out.write_text(text)
    except OSError as err:
        print(f"Error: {out}: cannot write ({err})", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
