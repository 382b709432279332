"""The summary of `make bench`: one line per benchmark, from the results the run wrote.

It reads `<dir>/ingest.json`, `batch.json`, `send.json` and `pipeline.json` (each run.py's
`--output`), prints the floor, Tidings, their ratio and the budget of each, and exits 1 if a
result is missing, a budget is missed or a verification failed. A last row holds the
architecture's memory budget: the peak RSS of `tidings serve` in the batch benchmark, whose
load takes it highest, against 200 MB. `--markdown` prints the rows in the shape of the
table in docs/benchmarks.md.

    .venv/bin/python bench/report.py bench/results/make [--markdown]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

BENCHMARKS = ("ingest", "batch", "send", "pipeline")


def rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def row(name: str, result: dict[str, Any] | None) -> tuple[list[str], bool, str]:
    """The row's cells, whether it passes, and what went wrong if not."""
    if result is None:
        return [name, "-", "-", "-", "-", "-", "-", "no result"], False, "no result"
    figures = result["budget"]
    machine = result["machine"]
    source = result.get("source", {})
    commit = str(source.get("commit", "?"))
    if len(commit) == 40:  # a full hash (--commit): shortened as git describe does
        commit = commit[:12]
    if source.get("tree", "working tree") != "working tree":
        commit += f" ({source['tree']})"
    verified = bool(result.get("verification", {}).get("ok"))
    problem = ""
    if not verified:
        problem = "verification failed"
    elif "inconclusive" in figures:
        problem = f"inconclusive: {figures['inconclusive']}"
    elif not figures["met"]:
        problem = "budget missed"
    ratio = "-" if figures["ratio"] is None else f"{figures['ratio']:.3f}"
    cells = [
        name,
        commit,
        f"{machine.get('cpus')} x {machine.get('cpu_model') or '?'}",
        f"{rate(figures['floor'])} {figures['metric']}",
        f"{rate(figures['tidings'])} {figures['metric']}",
        ratio,
        f">= {figures['budget']}",
        "yes" if verified and figures["met"] else f"no ({problem})",
    ]
    if result.get("settings", {}).get("quick"):
        cells[0] += " (quick)"
    return cells, verified and figures["met"], problem


def memory_row(batch: dict[str, Any] | None) -> tuple[list[str], bool, str]:
    """The memory budget's row, from the batch result: it has no floor."""
    summary = {} if batch is None else batch["summary"]
    peak = summary.get("tidings_peak_rss_mb")
    if batch is None or peak is None:
        return ["memory", "-", "-", "-", "-", "-", "-", "no result"], False, "no result"
    budget = summary["rss_budget_mb"]
    cells, _ok, _problem = row("memory", batch)
    met = peak <= budget
    cells[3:] = [
        "-",
        f"{peak:,.0f} MB peak RSS",
        "-",
        f"<= {budget} MB",
        "yes" if met else "no (budget missed)",
    ]
    return cells, met, "" if met else "budget missed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path, help="where the four results are")
    parser.add_argument("--markdown", action="store_true", help="rows for docs/benchmarks.md")
    args = parser.parse_args(argv)
    header = ["benchmark", "commit", "machine", "floor", "Tidings", "ratio", "budget", "met?"]
    rows, passed = [], True
    results = {}
    for name in BENCHMARKS:
        path = args.directory / f"{name}.json"
        results[name] = json.loads(path.read_text()) if path.exists() else None
    for cells, ok, _problem in [
        *(row(name, result) for name, result in results.items()),
        memory_row(results["batch"]),
    ]:
        rows.append(cells)
        passed = passed and ok
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for cells in rows:
            print("| " + " | ".join(cells) + " |")
    else:
        widths = [max(len(cells[i]) for cells in [header, *rows]) for i in range(len(header))]
        print()
        for cells in [header, *rows]:
            print("  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)))
        print(f"\n{'every budget met' if passed else 'NOT every budget met'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
