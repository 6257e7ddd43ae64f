#!/usr/bin/env python3
"""Prints one table from the `hermes bench --json` reports that run.sh collected.

Usage: table.py RESULTS_DIR

Reads every RESULTS_DIR/run-*.json, groups the runs by (clients, write ratio), and prints per
system the throughput and read/write latency percentiles; every row but Hermes' also shows
Hermes' throughput divided by that row's (the Hermes/etcd and Hermes/Redis ratios).
"""

import json
import pathlib
import sys

# The order of systems within a group.
SYSTEM_ORDER = ["hermes", "etcd", "redis", "redis-set"]
# How each system is named in the table.
SYSTEM_LABELS = {
    "hermes": "hermes",
    "etcd": "etcd",
    "redis": "redis SET+WAIT",
    "redis-set": "redis SET",
}


def system_of(report):
    """The system a report measured: hermes, etcd, redis (SET + WAIT) or redis-set (SET)."""
    if report.get("target") == "redis" and report.get("write_mode") == "SET":
        return "redis-set"
    return report.get("target", "hermes")


def latency(report, kind, percentile):
    """A latency percentile in microseconds, or '-' if that kind of operation did not run."""
    value = report.get(kind, {}).get("latency_us", {}).get(percentile)
    if value is None or report.get(kind, {}).get("ok", 0) == 0:
        return "-"
    return f"{value:,.0f}"


def main(arguments):
    if len(arguments) != 2:
        sys.exit("usage: table.py RESULTS_DIR")
    reports = []
    for path in sorted(pathlib.Path(arguments[1]).glob("run-*.json")):
        try:
            reports.append(json.loads(path.read_text()))
        except (OSError, ValueError) as err:
            sys.exit(f"table.py: cannot read {path}: {err}")
    if not reports:
        sys.exit(f"table.py: no run-*.json in {arguments[1]}")

    groups = {}
    for report in reports:
        key = (report["clients"], -report["write_ratio"])
        groups.setdefault(key, {})[system_of(report)] = report

    header = [
        "system",
        "clients",
        "write %",
        "ops/s",
        "read p50 µs",
        "read p99 µs",
        "write p50 µs",
        "write p99 µs",
        "errors",
        "hermes ÷ row",
    ]
    rows = []
    notes = []
    for (clients, negative_ratio), systems in sorted(groups.items()):
        hermes = systems.get("hermes")
        for system in sorted(systems, key=SYSTEM_ORDER.index):
            report = systems[system]
            ratio = "-"
            if hermes is not None and system != "hermes" and report["ops_per_sec"] > 0:
                ratio = f"{hermes['ops_per_sec'] / report['ops_per_sec']:.2f}×"
            rows.append(
                [
                    SYSTEM_LABELS[system],
                    str(clients),
                    f"{-negative_ratio * 100:g}",
                    f"{report['ops_per_sec']:,.0f}",
                    latency(report, "read", "p50"),
                    latency(report, "read", "p99"),
                    latency(report, "write", "p50"),
                    latency(report, "write", "p99"),
                    str(report["errors"]),
                    ratio,
                ]
            )
            absent = report.get("read", {}).get("absent", 0)
            if absent:
                notes.append(
                    f"{SYSTEM_LABELS[system]}, {clients} clients, {-negative_ratio * 100:g} % "
                    f"writes: {absent} reads found the key absent"
                )
        rows.append(None)

    widths = [len(title) for title in header]
    for row in rows:
        for column, cell in enumerate(row or []):
            widths[column] = max(widths[column], len(cell))

    def line(cells):
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:])]
        return "  ".join([first] + rest)

    print(line(header))
    print(line(["-" * width for width in widths]))
    for row in rows[:-1]:
        print(line(row) if row else "")
    for note in notes:
        print(f"note: {note}")


if __name__ == "__main__":
    main(sys.argv)
