"""The benchmark runs end to end (small): the timing table with every implementation in its own
process, the quiet/busy comparison, and the per-process memory table; and the GLiNER benchmark
against the gliner package."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from anno_mlx.bench.throughput import cpu_burners
from anno_mlx.cli import main

NAMES = ("anno-mlx (MLX)", "anno-mlx (PyTorch)", "transformers (sdpa)")


def table_rows(out: str, workload: str) -> list[str]:
    rows = [line for line in out.splitlines() if line.startswith(workload)]
    assert [name for name in NAMES if any(name in row for row in rows)] == list(NAMES)
    for row in rows:
        rate, ratio = re.search(r"\)\s+(\d+)\s+([\d.]+)x", row).groups()
        assert int(rate) > 0 and float(ratio) > 0
    return rows


def test_quick_bench_prints_the_comparison(capsys):
    assert main(["bench", "--quick", "--only", "b", "d"]) == 0
    out = capsys.readouterr().out
    for workload in ("b: one 512-token document", "d: 4,000-token document, NER pipeline"):
        assert len(table_rows(out, workload)) == 3
    assert "model FLOPs per token" in out
    assert "each implementation ran in its own process" in out
    assert "transformers' process never imported anno_mlx" in out


def test_busy_runs_the_comparison_quiet_and_beside_cpu_burners(capsys):
    assert main(["bench", "--quick", "--only", "b", "--busy", "1"]) == 0
    out = capsys.readouterr().out
    quiet, rest = out.split("\nquiet:\n")[1].split("\nbusy, 1 CPU-burning process alongside:\n")
    busy, ratios = rest.split("\nbusy / quiet tokens/s")
    for table in (quiet, busy):
        assert len(table_rows(table, "b: one 512-token document")) == 3
    (row,) = [line for line in ratios.splitlines() if line.startswith("b: one 512-token document")]
    assert len(re.findall(r"\d+\.\d+x", row)) == 3


def test_cpu_burners_are_killed_however_the_block_ends():
    with cpu_burners(2) as burners:
        assert [b.poll() for b in burners] == [None, None]
    assert all(b.poll() is not None for b in burners)
    with pytest.raises(KeyboardInterrupt):
        with cpu_burners(1) as burners:
            raise KeyboardInterrupt
    assert burners[0].poll() is not None


def test_memory_is_measured_per_implementation_in_its_own_process(capsys):
    assert main(["bench", "--quick", "--only", "b", "--memory"]) == 0
    out = capsys.readouterr().out
    assert "each implementation and workload in a fresh process" in out
    (row,) = [line for line in out.splitlines() if line.startswith("b: one 512-token document")]
    peaks = [float(x) for x in row.split()[-3:]]
    assert len(peaks) == 3 and all(p >= 0 for p in peaks)


def test_gliner_benchmark_compares_ours_with_the_package(tmp_path, capsys):
    """benchmarks/gliner.py on the tiny GLiNER model: our two paths and the gliner package (one
    call that truncates, and the text cut into max_len-word pieces), each with a ratio."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gliner.py"
    spec = importlib.util.spec_from_file_location("gliner_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # its dataclasses look their module up
    spec.loader.exec_module(bench)
    bench.main(["--quick", "--only", "c", "--work", str(tmp_path)])
    out = capsys.readouterr().out
    assert "the gliner package's process never imported anno_mlx" in out
    rows = [line for line in out.splitlines() if line.startswith("c: one 960-word document")]
    names = ["anno-mlx (MLX)", "anno-mlx (PyTorch)", "gliner package, one call (reads 48)"]
    names.append("gliner package, 20 pieces of 48")
    assert [next(name for name in names if name in row) for row in rows] == names
    ratios = []
    for row in rows:
        rate, ratio = re.search(r"\s(\d+)\s+([\d.]+)x\s", row).groups()
        assert int(rate) > 0 and float(ratio) > 0
        ratios.append(ratio)
    assert ratios[-1] == "1.00"  # the baseline: the package over the pieces
