"""Inventories (client/diagnosis/inventory.py) and the text of diagnoses
(present/diagnosis_report.py): parsing, escaping, the Prometheus textfile format."""

from __future__ import annotations

import json

from nbdtui.client.diagnosis.check_many import Checked
from nbdtui.client.diagnosis.inventory import parse_inventory, target
from nbdtui.client.diagnosis.results import STEP_NAMES, Diagnosis, Step, shown
from nbdtui.present import diagnosis_report as report


def diagnosis(uri: str, failed: str | None = None, **facts: object) -> Diagnosis:
    d = Diagnosis(uri, **facts)  # type: ignore[arg-type]
    for name in STEP_NAMES:
        if failed == name:
            d.steps.append(Step(name, "fail", f"{name} broke", f"fix {name}"))
        else:
            d.steps.append(Step(name, "ok", f"{name} fine"))
    return d


def test_inventory_lines_comments_fields_and_problems():
    text = (
        "# fleet\n"
        "nbd://a/disk   # trailing comment\n"
        "   \n"
        "nbd+unix:///vm?socket=/run/vm.sock via=root@hv1:2222\n"
        "nbd://b/x colour=red\n"
        "nbd://c:99999/x\n"
        "nbd+ssh://h/x via=other\n"
        "nbds://u@d/x?tls-psk-file=/secret.psk\n"
    )
    targets, problems = parse_inventory(text, "inv.txt")
    assert [t.source for t in targets] == ["inv.txt:2", "inv.txt:4", "inv.txt:8"]
    assert targets[0].label == "nbd://a/disk" and targets[0].via is None
    hv = targets[1]
    assert hv.via == "root@hv1:2222" and hv.label.endswith(" via root@hv1:2222")
    assert hv.endpoint.transport == "ssh"
    assert (hv.endpoint.host, hv.endpoint.port, hv.endpoint.user) == ("hv1", 2222, "root")
    assert hv.endpoint.socket == "/run/vm.sock"
    assert "secret" not in targets[2].label
    assert [p.where for p in problems] == ["inv.txt:5", "inv.txt:6", "inv.txt:7"]
    assert str(problems[0]) == "inv.txt:5: unknown field 'colour=red' (fields: via=)"
    assert "99999" in problems[1].message
    assert "nbd+ssh" in problems[2].message


def test_shown_escapes_control_characters():
    assert shown("disk") == "'disk'"
    assert shown("a\x1b[31mb") == "'a\\x1b[31mb'"
    assert shown("") == "''"


def test_doctor_lines_show_status_and_hints():
    lines = report.doctor_lines(diagnosis("nbd://h/x", failed="tls"))
    assert lines[0] == "nbdtui doctor nbd://h/x"
    assert "  tls         FAIL     tls broke" in lines
    assert lines[lines.index("  tls         FAIL     tls broke") + 1].endswith("hint: fix tls")
    assert lines[-1] == "failed at tls: fix tls"
    assert report.doctor_lines(diagnosis("nbd://h/x"))[-1] == "no step failed"


def test_check_record_json_and_table():
    up = Checked(
        target("nbd://h/up"),
        diagnosis("nbd://h/up", size=1 << 20, read_only=True, latency=0.0012345),
        0.1,
    )
    down = Checked(target("nbd://h/down"), diagnosis("nbd://h/down", failed="connect"), 0.1)
    assert json.loads(report.check_json_line(up)) == {
        "uri": "nbd://h/up",
        "ok": True,
        "step": None,
        "error": None,
        "size": 1 << 20,
        "read_only": True,
        "latency_ms": 1.234,
    }
    assert report.check_record(down)["step"] == "connect"
    table = report.check_table([up, down])
    assert table[1].split() == ["up", "nbd://h/up", "1.0", "MiB", "ro", "1.23", "ms"]
    assert table[2].split()[:5] == ["DOWN", "nbd://h/down", "-", "-", "-"]
    assert table[2].endswith("connect: connect broke")


def test_prometheus_labels_are_escaped_and_absent_values_omitted():
    weird = Checked(
        target("nbd://h/a%22b%5Cc"),
        diagnosis('nbd://h/a"b\\c', size=5, latency=0.5),
        0,
    )
    down = Checked(target("nbd://h/d"), diagnosis("nbd://h/d", failed="read"), 0)
    text = report.prometheus_text([weird, down], inventory_errors=2)
    lines = text.splitlines()
    assert lines[0].startswith("# HELP nbdtui_export_up ")
    assert lines[1] == "# TYPE nbdtui_export_up gauge"
    label = weird.target.label.replace("\\", "\\\\").replace('"', '\\"')
    assert f'nbdtui_export_up{{endpoint="{label}"}} 1' in lines
    assert 'nbdtui_export_up{endpoint="nbd://h/d"} 0' in lines
    assert f'nbdtui_export_read_latency_seconds{{endpoint="{label}"}} 0.5' in lines
    assert not any(
        line.startswith('nbdtui_export_size_bytes{endpoint="nbd://h/d"') for line in lines
    )
    assert lines[-1] == "nbdtui_check_inventory_errors 2"
    assert text.endswith("\n")


def test_repeated_endpoints_are_problems_naming_the_first():
    from nbdtui.client.diagnosis.inventory import without_duplicates

    targets, problems = parse_inventory("nbd://a/x\nnbd://b/y\nnbd://a/x\n", "inv")
    targets.append(target("nbd://b/y"))
    unique, repeated = without_duplicates(targets)
    assert [t.label for t in unique] == ["nbd://a/x", "nbd://b/y"]
    assert [str(p) for p in repeated] == [
        "inv:3: nbd://a/x again (first: inv:1)",
        "argument: nbd://b/y again (first: inv:2)",
    ]
    assert problems == []
