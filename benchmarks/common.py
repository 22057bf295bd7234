"""Shared benchmark helpers: percentiles, result tables and JSON output."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results"


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p95_ms": round(float(np.percentile(ms, 95)), 3)}


def machine() -> dict[str, str]:
    import os

    return {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(), "cores": str(os.cpu_count())}


def _cell(value) -> str:
    return "-" if value is None else f"{value:,.3f}" if isinstance(value, float) else str(value)


def print_table(title: str, rows: list[dict], console: Console | None = None) -> None:
    table = Table(title=title, title_justify="left")
    columns = list(dict.fromkeys(key for row in rows for key in row))  # every row's keys; a missing cell shows "-"
    for column in columns:
        table.add_column(column, justify="left" if column in ("what", "stage", "method", "pipeline") else "right")
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    (console or Console(width=max(160, Console().width))).print(table)  # wide: tables are read in logs too


def write_json(name: str, data: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M:%S"), **data}, indent=2))
    return path
