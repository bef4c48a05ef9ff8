"""The benchmark runs end to end (small): the timing table and the per-process memory table."""

from __future__ import annotations

import re

from anno_mlx.cli import main

NAMES = ("anno-mlx (MLX)", "anno-mlx (PyTorch)", "transformers (sdpa)")


def test_quick_bench_prints_the_comparison(capsys):
    assert main(["bench", "--quick", "--only", "b", "d"]) == 0
    out = capsys.readouterr().out
    for workload in ("b: one 512-token document", "d: 4,000-token document, NER pipeline"):
        rows = [line for line in out.splitlines() if line.startswith(workload)]
        assert [name for name in NAMES if any(name in row for row in rows)] == list(NAMES)
        for row in rows:
            rate, ratio = re.search(r"\)\s+(\d+)\s+([\d.]+)x", row).groups()
            assert int(rate) > 0 and float(ratio) > 0
    assert "model FLOPs per token" in out


def test_memory_is_measured_per_implementation_in_its_own_process(capsys):
    assert main(["bench", "--quick", "--only", "b", "--memory"]) == 0
    out = capsys.readouterr().out
    assert "each implementation and workload in a fresh process" in out
    (row,) = [line for line in out.splitlines() if line.startswith("b: one 512-token document")]
    peaks = [float(x) for x in row.split()[-3:]]
    assert len(peaks) == 3 and all(p >= 0 for p in peaks)
