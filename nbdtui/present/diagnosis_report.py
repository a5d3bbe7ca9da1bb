"""Text of diagnoses: ``nbdtui doctor``'s steps, and ``nbdtui check``'s table, JSON lines
and Prometheus textfile (node_exporter's textfile collector format)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from nbdtui.client.diagnosis.check_many import Checked
from nbdtui.client.diagnosis.results import Diagnosis, Step
from nbdtui.present.sizes import format_size
from nbdtui.present.terminal_text import terminal_text

_MARK = {"ok": "ok", "warn": "WARN", "fail": "FAIL", "skipped": "skipped"}


def _safe(text: str) -> str:
    """Text for a terminal: what the server sent (names already quoted by the steps)
    with every control or format character made visible (``terminal_text``)."""
    return terminal_text(text, backslash=False)


def step_lines(step: Step) -> list[str]:
    """A step's line (name, status, detail) and a ``hint:`` line under warn and fail."""
    lines = [f"  {step.name:<11} {_MARK[step.status]:<8} {_safe(step.detail)}"]
    if step.hint:
        lines.append(f"  {'':<11} {'':<8} hint: {_safe(step.hint)}")
    return lines


def doctor_header(uri: str) -> str:
    return f"nbdtui doctor {_safe(uri)}"


def doctor_footer(diagnosis: Diagnosis) -> str:
    failed = diagnosis.failed
    if failed is None:
        return "no step failed"
    return f"failed at {failed.name}: {_safe(failed.hint or failed.detail)}"


def doctor_lines(diagnosis: Diagnosis) -> list[str]:
    """The whole report: a header, :func:`step_lines` of every step, a verdict."""
    lines = [doctor_header(diagnosis.uri)]
    for step in diagnosis.steps:
        lines += step_lines(step)
    lines.append(doctor_footer(diagnosis))
    return lines


def check_record(checked: Checked) -> dict[str, object]:
    """The JSON object of one endpoint (``nbdtui check --json``, one a line)."""
    d = checked.diagnosis
    failed = d.failed
    return {
        "uri": checked.target.label,
        "ok": failed is None,
        "step": failed.name if failed else None,
        "error": failed.detail if failed else None,
        "size": d.size,
        "read_only": d.read_only,
        "latency_ms": round(d.latency * 1000, 3) if d.latency is not None else None,
    }


def check_json_line(checked: Checked) -> str:
    return json.dumps(check_record(checked), ensure_ascii=False)


def check_table(results: Sequence[Checked]) -> list[str]:
    """An aligned table: status, endpoint, size, ro/rw, latency, failed step and error."""
    rows = [("STATUS", "ENDPOINT", "SIZE", "MODE", "LATENCY", "PROBLEM")]
    for checked in results:
        r = check_record(checked)
        size = r["size"]
        latency = r["latency_ms"]
        rows.append(
            (
                "up" if r["ok"] else "DOWN",
                _safe(str(r["uri"])),
                format_size(size) if isinstance(size, int) else "-",
                "-" if r["read_only"] is None else ("ro" if r["read_only"] else "rw"),
                f"{latency:.2f} ms" if isinstance(latency, float) else "-",
                _safe(f"{r['step']}: {r['error']}") if r["step"] else "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5])).rstrip()
        + ("  " + row[5] if row[5] else "")
        for row in rows
    ]


def _label(value: str) -> str:
    """A Prometheus label value: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


_METRICS = (
    ("nbdtui_export_up", "1 if the export answered every quick step of nbdtui check, else 0"),
    ("nbdtui_export_size_bytes", "size of the export in bytes"),
    ("nbdtui_export_read_latency_seconds", "latency of one 4 KiB read in seconds"),
)


def prometheus_text(results: Sequence[Checked], inventory_errors: int = 0) -> str:
    """node_exporter's textfile format: HELP and TYPE, then one sample an endpoint."""
    out: list[str] = []
    for name, text in _METRICS:
        out.append(f"# HELP {name} {text}")
        out.append(f"# TYPE {name} gauge")
        for checked in results:
            d = checked.diagnosis
            labels = f'endpoint="{_label(checked.target.label)}"'
            if name == "nbdtui_export_up":
                value: str | None = "1" if d.ok else "0"
            elif name == "nbdtui_export_size_bytes":
                value = str(d.size) if d.size is not None else None
            else:
                value = repr(d.latency) if d.latency is not None else None
            if value is not None:
                out.append(f"{name}{{{labels}}} {value}")
    out.append("# HELP nbdtui_check_inventory_errors inventory lines that could not be read")
    out.append("# TYPE nbdtui_check_inventory_errors gauge")
    out.append(f"nbdtui_check_inventory_errors {inventory_errors}")
    return "\n".join(out) + "\n"
