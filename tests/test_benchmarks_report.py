"""`segbench report`: Markdown table, PNG chart and target ratios from a synthetic JSON file."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from benchmarks.report import load_rows, main
from benchmarks.targets import target_lines


def _case(name: str, backend: str, images_per_s: float, efficiency: float | None) -> dict:
    info = {
        "backend": backend,
        "arch": "unet",
        "size": 256,
        "batch": 8,
        "p50_ms": 8000 / images_per_s,
        "p90_ms": 9000 / images_per_s,
        "p99_ms": 9900 / images_per_s,
        "images_per_s": images_per_s,
        "gflops_per_s": None if efficiency is None else 400.0 * efficiency,
        "peak_gflops": 400.0,
        "efficiency": efficiency,
    }
    return {"name": f"test_{name}", "group": "g", "extra_info": info, "stats": {}}


@pytest.fixture
def results(tmp_path):
    data = {
        "machine_info": {
            "cpu": {"brand_raw": "Test CPU"},
            "segkit": {"nproc": 2, "torch": "2.x", "load_average": [1.0, 0.5, 0.25]},
        },
        "benchmarks": [
            _case("torch_cpu[eager]", "torch_eager", 2.0, 0.5),
            _case("onnxruntime_cpu[e2e]", "ort_e2e", 4.0, 0.9),
            _case("data_loader", "data_loader", 50.0, None),
            {"name": "test_other", "extra_info": {}, "stats": {}},  # not a segkit case
        ],
    }
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    return path


def segbench(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_report_writes_table_and_chart(results, tmp_path):
    out = tmp_path / "report"
    result = segbench("report", results, "-o", out)
    assert result.exit_code == 0, result.output
    table = (out / "results.md").read_text()
    assert "| torch_cpu[eager] | torch_eager | unet | 256 | 8 | 4000.0 |" in table
    assert "| data_loader | data_loader |" in table
    assert "Test CPU" in table and "1.00, 0.50, 0.25" in table
    assert "test_other" not in table and "other" not in table.split("|")
    assert "2.00x (target >= 1.50x) -> met" in table
    assert "90% of peak (target 85%) -> met" in table
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in result.stdout


def test_targets_report_misses_and_missing_cases(results):
    rows, _ = load_rows(results)
    rows[1]["images_per_s"] = 2.5  # 1.25x the eager rate
    lines = target_lines(rows)
    assert any("1.25x (target >= 1.50x) -> NOT met" in line for line in lines)
    assert not any("ort_model" in line for line in lines)  # no ORT model-only case measured
    assert not any(line.startswith("GPU") for line in lines)  # no GPU case measured


def test_report_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.json"
    result = segbench("report", missing)
    assert result.exit_code == 2 and f"{missing}: no such results file" in result.stderr
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"something": 1}))
    result = segbench("report", foreign)
    assert result.exit_code == 2 and "not a pytest-benchmark JSON file" in result.stderr
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"benchmarks": []}))
    result = segbench("report", empty)
    assert result.exit_code == 2 and "no segkit benchmark cases" in result.stderr


def test_machine_names_the_instruction_set(tmp_path):
    result = segbench("machine", "-o", tmp_path / "machine.md")
    assert result.exit_code == 0, result.output
    assert "- instruction set: " in (tmp_path / "machine.md").read_text()
