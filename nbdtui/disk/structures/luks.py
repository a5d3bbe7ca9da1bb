"""LUKS1 and LUKS2 headers (blkid: crypto_LUKS).

Big-endian. LUKS1 (592 bytes) has no checksum of its own; its checks are the magic,
the version, each key slot's state and the payload offset. A LUKS2 binary header
(4096 bytes) is followed by its JSON area; ``csum`` (``checksum_alg``, sha256) covers
both, ``hdr_size`` bytes, with ``csum`` taken as zero. The secondary header (magic
``SKUL\\xba\\xbe``) starts right after the primary, at ``hdr_size``, and differs from
it by design in its magic, ``hdr_offset`` and ``csum``.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Generator

from nbdtui.disk.structures.field_specs import (
    Values,
    decoded,
    differences,
    read_backup,
    restore_source,
    table,
    text,
    unreadable,
    with_targets,
)
from nbdtui.disk.structures.model import Backup, Check, Field, Patch, ProbePlan, Request, Structure
from nbdtui.errors import RepairError

TYPES = ("crypto_LUKS",)
MAGIC = b"LUKS\xba\xbe"
MAGIC2 = b"SKUL\xba\xbe"  # LUKS2 secondary header
KEYSLOT_ACTIVE, KEYSLOT_DISABLED = 0x00AC71F3, 0x0000DEAD
#: LUKS2 header sizes (binary header + JSON area) the format allows: 16 KiB to 4 MiB.
HDR_SIZES = tuple(0x4000 << n for n in range(9))

ROWS1 = table(
    (
        ("magic", 0, "6x", "magic 'LUKS\\xba\\xbe'"),
        ("version", 6, "H", "format version (1)"),
        ("cipher_name", 8, "32s", "cipher"),
        ("cipher_mode", 40, "32s", "cipher mode"),
        ("hash_spec", 72, "32s", "hash for PBKDF2 and the AF splitter"),
        ("payload_offset", 104, "I", "first sector of the encrypted data"),
        ("key_bytes", 108, "I", "master key length in bytes"),
        ("mk_digest", 112, "20x", "PBKDF2 digest of the master key"),
        ("mk_digest_salt", 132, "32x", "salt of that digest"),
        ("mk_digest_iter", 164, "I", "iterations of that digest"),
        ("uuid", 168, "40s", "UUID"),
        *(
            row
            for n in range(8)
            for row in (
                (f"key_slot_{n}.active", 208 + 48 * n, "I", "0x00AC71F3 in use, 0x0000DEAD free"),
                (f"key_slot_{n}.iterations", 212 + 48 * n, "I", "PBKDF2 iterations"),
                (
                    f"key_slot_{n}.key_material_offset",
                    248 + 48 * n,
                    "I",
                    "first sector of key material",
                ),
                (f"key_slot_{n}.stripes", 252 + 48 * n, "I", "anti-forensic stripes (4000)"),
            )
        ),
    ),
    ">",
)
ROWS2 = table(
    (
        ("magic", 0, "6x", "magic 'LUKS\\xba\\xbe' (secondary: 'SKUL\\xba\\xbe')"),
        ("version", 6, "H", "format version (2)"),
        ("hdr_size", 8, "Q", "bytes of this header with its JSON area"),
        ("seqid", 16, "Q", "sequence id, raised on each update"),
        ("label", 24, "48s", "label"),
        ("checksum_alg", 72, "32s", "checksum algorithm"),
        ("salt", 104, "64x", "salt (unique per header)"),
        ("uuid", 168, "40s", "UUID"),
        ("subsystem", 208, "48s", "subsystem label"),
        ("hdr_offset", 256, "Q", "this header's own offset"),
        ("csum", 448, "64x", "checksum of the header and its JSON area"),
    ),
    ">",
)
#: Differ by design between the primary and the secondary LUKS2 header.
OWN2 = ("magic", "salt", "hdr_offset", "csum")
COMPARED2 = (*(s.name for s in ROWS2 if s.name not in OWN2), "json")


def _digest(alg: str, area: bytes) -> bytes | None:
    blob = bytes(area[:448]) + bytes(64) + bytes(area[512:])
    try:
        return hashlib.new(alg, blob).digest()
    except ValueError:
        return None


def _luks2_checks(area: bytes, v: Values, own_offset: int) -> list[Check]:
    alg = str(v.get("checksum_alg", ""))
    checks = [
        Check(
            "hdr_offset",
            v.get("hdr_offset") == own_offset,
            str(v.get("hdr_offset")),
            str(own_offset),
            "the header does not record its own offset",
        ),
    ]
    want = _digest(alg, area)
    if want is None:
        checks.append(Check("checksum", False, alg, "", f"unknown checksum algorithm {alg!r}"))
    else:
        got = bytes(area[448 : 448 + len(want)])
        checks.append(
            Check(
                alg,
                got == want,
                got.hex(),
                want.hex(),
                f"the header's {alg} does not match its bytes",
            )
        )
    return checks


def _json(area: bytes) -> dict[str, object] | None:
    raw = bytes(area[4096:]).split(b"\0", 1)[0]
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def _json_facts(doc: dict[str, object], at: int, base: int) -> list[Field]:
    """A few facts of the JSON area, as fields of the area (it starts at ``at``; the
    device at ``base``)."""
    keyslots, segments, config = doc.get("keyslots"), doc.get("segments"), doc.get("config")
    facts = []
    if isinstance(keyslots, dict):
        facts.append(("json.keyslots", ", ".join(sorted(keyslots)) or "none", "key slots in use"))
    if isinstance(segments, dict) and isinstance(segments.get("0"), dict):
        seg = segments["0"]
        for key, meaning in (
            ("offset", "data offset in bytes"),
            ("size", "data size"),
            ("encryption", "cipher"),
            ("sector_size", "encryption sector size"),
        ):
            if key in seg:
                facts.append((f"json.segments.0.{key}", str(seg[key]), meaning))
    if isinstance(config, dict):
        for key in ("json_size", "keyslots_size"):
            if key in config:
                facts.append((f"json.config.{key}", str(config[key]), "bytes"))
    out = [Field(name, at, 0, value, meaning) for name, value, meaning in facts]
    return [
        Field(f.name, f.at, 0, f.value, f.meaning, "offset", base + int(f.value))
        if f.name == "json.segments.0.offset" and f.value.isdigit()
        else f
        for f in out
    ]


def probe(offset: int, size: int) -> ProbePlan:
    """The LUKS header that starts at ``offset``, or None. A LUKS2 secondary header at
    ``offset`` stands for the volume that starts ``hdr_offset`` bytes earlier: decoded
    from its primary when that still has its magic, from the secondary (with the failed
    check ``primary``) when not (so a scan finds a volume whose primary was wiped)."""
    if size < 592:
        return None
    head = yield (offset, 592)
    if head[:6] == MAGIC2:
        return (yield from _from_secondary(offset, size, head))
    if head[:6] != MAGIC:
        return None
    version = struct.unpack_from(">H", head, 6)[0]
    if version == 2:
        return (yield from _luks2(offset, size, head))
    fields, v = decoded(ROWS1, head, offset)
    states = [int(v[f"key_slot_{n}.active"]) for n in range(8)]
    payload = int(v["payload_offset"])
    checks = (
        Check("magic", True, MAGIC.hex(), MAGIC.hex()),
        Check("version", version == 1, str(version), "1 or 2"),
        Check(
            "key_slots",
            all(s in (KEYSLOT_ACTIVE, KEYSLOT_DISABLED) for s in states),
            " ".join(f"{s:08x}" for s in states),
            "00ac71f3 or 0000dead",
            "a key slot's state is neither in use nor free",
        ),
        Check(
            "payload_offset",
            payload * 512 <= size,
            str(payload),
            f"<= {size // 512}",
            "the data would start past the end of the device",
        ),
    )
    targets = {"payload_offset": ("sector", offset + payload * 512)}
    for n in range(8):
        km = int(v[f"key_slot_{n}.key_material_offset"])
        if states[n] == KEYSLOT_ACTIVE:
            targets[f"key_slot_{n}.key_material_offset"] = ("sector", offset + km * 512)
    return Structure(
        type="crypto_LUKS",
        offset=offset,
        at=offset,
        length=592,
        size=None,
        label="",
        uuid=str(v["uuid"]),
        version=f"LUKS{version}",
        name=f"LUKS{version} header",
        fields=with_targets(fields, targets),
        checks=checks,
        problems=tuple(c.detail for c in checks if not c.ok),
    )


def _luks2(offset: int, size: int, head: bytes) -> ProbePlan:
    hdr_size = struct.unpack_from(">Q", head, 8)[0]
    fits = hdr_size in HDR_SIZES and 2 * hdr_size <= size
    area = (yield (offset, hdr_size)) if fits else (yield (offset, min(4096, size)))
    fields, v = decoded(ROWS2, area, offset)
    checks = [
        Check("magic", True, MAGIC.hex(), MAGIC.hex()),
        Check(
            "hdr_size",
            fits,
            str(hdr_size),
            "16 KiB to 4 MiB, a power of 2",
            "the header size is not one LUKS2 allows",
        ),
    ]
    backups: list[Backup] = []
    doc = None
    if fits:
        checks += _luks2_checks(area, v, 0)
        doc = _json(area)
        checks.append(Check("json", doc is not None, "", "", "the JSON area does not parse"))
        v["json"] = bytes(area[4096:])
        copy = yield from read_backup(offset + hdr_size, hdr_size)
        if copy is None:
            backups.append(unreadable(offset + hdr_size, hdr_size, "secondary header"))
        else:
            _, cv = decoded(ROWS2, copy, offset + hdr_size)
            cv["json"] = bytes(copy[4096:])
            sound = copy[:6] == MAGIC2 and all(c.ok for c in _luks2_checks(copy, cv, hdr_size))
            diff = differences(v, cv, COMPARED2)
            if copy[:6] != MAGIC2:
                diff = ("magic", *diff)
            backups.append(
                Backup(offset + hdr_size, hdr_size, not diff, sound, diff, "secondary header")
            )
    facts = _json_facts(doc, offset + 4096, offset) if doc else []
    targets = {"hdr_size": ("offset", offset + hdr_size)} if fits else {}
    return Structure(
        type="crypto_LUKS",
        offset=offset,
        at=offset,
        length=hdr_size if fits else 4096,
        size=None,
        label=str(v["label"]),
        uuid=str(v["uuid"]),
        version="LUKS2",
        name="LUKS2 header",
        fields=with_targets(fields, targets) + tuple(facts),
        checks=tuple(checks),
        backups=tuple(backups),
        problems=tuple(c.detail for c in checks if not c.ok),
    )


def _from_secondary(at: int, size: int, head: bytes) -> ProbePlan:
    version, hdr_size = struct.unpack_from(">HQ", head, 6)
    own = struct.unpack_from(">Q", head, 256)[0]
    if version != 2 or hdr_size not in HDR_SIZES or own != hdr_size or own > at:
        return None
    if hdr_size > size:
        return None
    start = at - own
    primary = yield (start, 592)
    if primary[:6] == MAGIC:
        return (yield from _luks2(start, size + own, primary))
    area = yield (at, hdr_size)
    fields, v = decoded(ROWS2, area, at)
    why = f"the primary header at {start} is missing: decoded from the secondary at {at}"
    checks = [Check("primary", False, detail=why), *_luks2_checks(area, v, own)]
    doc = _json(area)
    facts = _json_facts(doc, at + 4096, start) if doc else []
    return Structure(
        type="crypto_LUKS",
        offset=start,
        at=at,
        length=hdr_size,
        label=str(v["label"]),
        uuid=str(v["uuid"]),
        version="LUKS2",
        name="LUKS2 secondary header",
        fields=fields + tuple(facts),
        checks=tuple(checks),
        problems=tuple(c.detail for c in checks if not c.ok),
    )


# ---- repairs ---------------------------------------------------------------------


def _with_digest(area: bytearray) -> bytes:
    """A LUKS2 header (binary header and JSON area) with its checksum stored."""
    alg = text(bytes(area[72:104]))
    want = _digest(alg, bytes(area))
    if want is None:
        raise RepairError(f"unknown LUKS2 checksum algorithm {alg!r}: nothing was written")
    area[448:512] = want + bytes(64 - len(want))
    return bytes(area)


def _require_luks2(structure: Structure, action: str) -> None:
    if structure.version != "LUKS2":
        raise RepairError(f"a {structure.version} header has no {action}: nothing was written")


def restore_plan(structure: Structure) -> Generator[Request, bytes, list[Patch]]:
    """Put the sound secondary LUKS2 header over the primary: its magic, ``hdr_offset``
    made the primary's (0) and the checksum computed again; the JSON area as it is."""
    _require_luks2(structure, "backup header")
    source = restore_source(structure, structure.offset)
    primary = bytes((yield (structure.offset, source.length)))
    area = bytearray((yield (source.at, source.length)))
    area[:6] = MAGIC
    struct.pack_into(">Q", area, 256, 0)
    new = _with_digest(area)
    return [Patch(structure.offset, primary, new)] if new != primary else []


def checksum_plan(structure: Structure) -> Generator[Request, bytes, list[Patch]]:
    """Store the computed checksum in each LUKS2 header (primary and secondary) that
    has its magic and a sound size."""
    _require_luks2(structure, "checksum")
    copies = [(structure.at, structure.length)]
    copies += [(b.at, b.length) for b in structure.backups if b.length == structure.length]
    patches = []
    for at, length in copies:
        area = bytes((yield (at, length)))
        if area[:6] not in (MAGIC, MAGIC2) or len(area) != length:
            continue
        new = _with_digest(bytearray(area))
        if new != area:
            patches.append(Patch(at, area, new))
    return patches
