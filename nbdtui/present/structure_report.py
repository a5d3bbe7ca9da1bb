"""Structures found on an export, as text for a person and as JSON for scripts
(``nbdtui inspect``), and the changed ranges of a repair (``nbdtui repair``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nbdtui.disk.structures.model import Backup, Patch, Structure
from nbdtui.disk.structures.survey import Found, Survey
from nbdtui.present.sizes import format_size

__all__ = ["patch_lines", "structure_json", "survey_json", "survey_lines"]

HEX_PER_LINE = 16


def _at(n: int) -> str:
    return f"{n} (0x{n:x})"


def structure_json(s: Structure, *, with_fields: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": s.type,
        "name": s.name,
        "offset": s.offset,
        "size": s.size,
        "label": s.label,
        "uuid": s.uuid,
        "version": s.version,
        "at": s.at,
        "length": s.length,
        "checks": [
            {
                "name": c.name,
                "ok": c.ok,
                "stored": c.stored,
                "computed": c.computed,
                "detail": c.detail,
            }
            for c in s.checks
        ],
        "backups": [_backup_json(b) for b in s.backups],
        "problems": list(s.problems),
    }
    if with_fields:
        out["fields"] = [
            {
                "name": f.name,
                "offset": f.at,
                "size": f.size,
                "value": f.value,
                "meaning": f.meaning,
                **({"target": f.target} if f.target is not None else {}),
            }
            for f in s.fields
        ]
    out["parts"] = [structure_json(p, with_fields=with_fields) for p in s.parts]
    return out


def _backup_json(b: Backup) -> dict[str, Any]:
    return {
        "offset": b.at,
        "length": b.length,
        "label": b.label,
        "matches": b.matches,
        "sound": b.sound,
        "differences": list(b.differences),
    }


def _found_json(f: Found, with_fields: bool) -> dict[str, Any]:
    if f.structure is not None:
        out = structure_json(f.structure, with_fields=with_fields)
    else:
        out = {"type": None, "offset": f.offset, "size": f.size, "label": "", "uuid": ""}
        out.update({"checks": [], "backups": [], "problems": ["no structure recognised"]})
    if f.partition is not None:
        p = f.partition
        out["partition"] = {
            "index": p.index,
            "scheme": p.scheme,
            "start": p.start,
            "size": p.size,
            "type_id": p.type_id,
            "type_name": p.type_name,
            "bootable": p.bootable,
        }
    return out


def survey_json(survey: Survey, *, with_fields: bool = True) -> dict[str, Any]:
    return {
        "export_size": survey.size,
        "partition_table": (
            structure_json(survey.table, with_fields=with_fields) if survey.table else None
        ),
        "no_table_reason": survey.absence or None,
        "structures": [_found_json(f, with_fields) for f in survey.found],
    }


def _structure_lines(
    s: Structure, indent: str, with_fields: bool, *, part: bool = False
) -> list[str]:
    head = f"{indent}{s.type}"
    if s.version:
        head += f" {s.version}"
    if s.label:
        head += f"  label {s.label!r}"
    if s.uuid:
        head += f"  uuid {s.uuid}"
    if s.size is not None:
        head += f"  size {format_size(s.size)}"
    lines = [] if part else [head]
    lines.append(f"{indent}  {s.name or s.type} at {_at(s.at)}, {s.length} bytes")
    for c in s.checks:
        state = "ok" if c.ok else "FAILED"
        values = ""
        if c.stored or c.computed:
            values = f"  stored {c.stored or '-'}  computed {c.computed or '-'}"
        lines.append(f"{indent}  check {c.name:<24} {state}{values}")
    for b in s.backups:
        state = "matches" if b.matches else "differs: " + ", ".join(b.differences)
        sound = "" if b.sound else " (fails its own checks)"
        lines.append(f"{indent}  backup {b.label} at {_at(b.at)}: {state}{sound}")
    for problem in s.problems:
        lines.append(f"{indent}  problem: {problem}")
    if with_fields:
        for f in s.fields:
            meaning = f"  ({f.meaning})" if f.meaning else ""
            lines.append(f"{indent}    {f.at:#010x}  {f.name:<28} {f.value}{meaning}")
    for inner in s.parts:
        lines.extend(_structure_lines(inner, indent, with_fields, part=True))
    return lines


def survey_lines(survey: Survey, *, with_fields: bool = False) -> list[str]:
    lines = []
    if survey.table is not None:
        lines.append("partition table:")
        lines.extend(_structure_lines(survey.table, "  ", with_fields))
    elif survey.absence and (not survey.found or survey.found[0].offset == 0):
        lines.append(f"no partition table: {survey.absence}")
    for f in survey.found:
        where = f"offset {_at(f.offset)}, {format_size(f.size)}"
        if f.partition is not None:
            p = f.partition
            flag = ", bootable" if p.bootable else ""
            lines.append(f"partition {p.index}: {where}, type {p.type_id} {p.type_name}{flag}")
        else:
            lines.append(f"{where}:")
        if f.structure is None:
            lines.append("  no structure recognised")
        else:
            lines.extend(_structure_lines(f.structure, "  ", with_fields))
    return lines


def patch_lines(patches: Iterable[Patch]) -> list[str]:
    """Each patch's changed bytes (only the 16-byte lines that differ), old then new."""
    lines = []
    for patch in patches:
        changed = sum(1 for a, b in zip(patch.old, patch.new, strict=True) if a != b)
        lines.append(f"range {_at(patch.at)}, {len(patch.new)} bytes ({changed} bytes change):")
        for pos in range(0, len(patch.new), HEX_PER_LINE):
            old = patch.old[pos : pos + HEX_PER_LINE]
            new = patch.new[pos : pos + HEX_PER_LINE]
            if old != new:
                lines.append(f"  {patch.at + pos:#012x}  old {old.hex(' ')}")
                lines.append(f"  {'':12}  new {new.hex(' ')}")
    return lines
