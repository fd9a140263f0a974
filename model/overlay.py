"""Overlay peer-store migration: the original node's legacy peer lists to the store it reads.

Canonical peer id: base58 (Bitcoin alphabet) of the 32-byte id followed by a 4-byte
checksum, the first 4 bytes of BLAKE3 of the id (36 bytes, at most 50 characters). Accepted
input ids: 64 hex characters (any case; converted) or a base58-check id (decoded, length and
checksum verified, re-encoded canonically). Anything else is reported with its position (the
original node kept it raw).

Legacy input (default ``~/.the_block/overlay_peers.json``), every layout the original node
wrote, detected by the first non-blank character:

- JSON (``[`` or ``{``): a list, or ``{"peers": [...]}`` holding a list, whose items are
  id strings, ``"ID ADDR"`` strings, or objects ``{"peer": ID, "address": ADDR}`` /
  ``{"id": ID, "address": ADDR}`` (also accepted: ``peer_id`` for the id, ``addr`` for the
  address; the address may be missing). Positions read ``index N`` (0-based).
- text: one ``ID [ADDR]`` a line; blank lines and lines starting with ``#`` are skipped.
  Positions read ``line N`` (1-based).
- a missing file: no peers (an empty store is written, as the original does). An empty or
  whitespace-only file is refused (a truncated file is more likely than an empty list).
- ``NaN``, ``Infinity`` and ``-Infinity`` (which Python's JSON reader takes but JSON does not
  have), also as a number too large for a float (``1e999``), are refused wherever they are,
  naming the position and the field (``index 0: field "score": NaN is not a JSON number``):
  the store written is always strict JSON (``allow_nan=False``), and nothing is written.

Output (default ``~/.the_block/overlay/peers.json``), ``store_format="node"``: exactly the
store the node reads, ``json.dumps(..., sort_keys=True, indent=2)`` with no trailing newline::

    {"peers": [{"address": "<ADDR or empty>", "id": "<base58check>", "last_seen": <unix s>}]}

``last_seen`` is the migration time for every peer. ``store_format="rich"`` writes the
releasesim audit layout instead: ``{"version": 1, "format": "base58check-blake3",
"migrated_at", "source", "peers": [{"id", "address"?, <other legacy fields>, "migrated_at"}]}``.

Duplicates (the same id in two spellings) are kept once, first position wins; order is the
input order. Nothing is written unless every entry migrates; the file is written atomically
(temp file in the same folder, fsync, ``os.replace``). Time is passed in. The base58 codec is
implemented here (twenty lines, tested against known vectors) rather than adding a dependency.

Imports only ``releasesim.model.crypto``, ``releasesim.model.errors`` and
``releasesim.model.strict_json``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from releasesim.model.crypto import blake3_hex
from releasesim.model.errors import InputError, MalformedInput
from releasesim.model.strict_json import load_json_strict

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
PEER_ID_BYTES = 32
CHECKSUM_BYTES = 4
MAX_ID_CHARS = 128
FORMAT = "base58check-blake3"
DEFAULT_OLD = Path("~/.the_block/overlay_peers.json")
DEFAULT_NEW = Path("~/.the_block/overlay/peers.json")
_HEX = frozenset("0123456789abcdefABCDEF")
STORE_FORMATS = ("node", "rich")
ID_KEYS = ("peer", "id", "peer_id")  # the original node's names first
ADDRESS_KEYS = ("address", "addr")


# -- base58 ------------------------------------------------------------------------------------
def b58encode(data: bytes) -> str:
    """Base58 (Bitcoin alphabet); each leading zero byte becomes a leading ``1``."""
    number = int.from_bytes(data, "big")
    digits = []
    while number:
        number, rest = divmod(number, 58)
        digits.append(ALPHABET[rest])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(digits))


def b58decode(text: str) -> bytes:
    """Inverse of ``b58encode``; raises ``MalformedInput`` naming a non-base58 character."""
    number = 0
    for position, char in enumerate(text, 1):
        if char not in _INDEX:
            raise MalformedInput(f"character {char!r} at {position} is not base58")
        number = number * 58 + _INDEX[char]
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * zeros + body


# -- peer ids ----------------------------------------------------------------------------------
def checksum(peer_id: bytes) -> bytes:
    """The first 4 bytes of BLAKE3(peer id)."""
    return bytes.fromhex(blake3_hex(peer_id))[:CHECKSUM_BYTES]


def encode_peer_id(peer_id: bytes) -> str:
    """The base58-check form of a 32-byte peer id."""
    if len(peer_id) != PEER_ID_BYTES:
        raise MalformedInput(f"peer id: expected {PEER_ID_BYTES} bytes, got {len(peer_id)}")
    return b58encode(peer_id + checksum(peer_id))


def decode_peer_id(text: str) -> bytes:
    """The 32-byte id of a base58-check peer id; raises ``MalformedInput`` saying why."""
    if len(text) > MAX_ID_CHARS:
        raise MalformedInput(f"too long ({len(text)} characters; at most {MAX_ID_CHARS})")
    raw = b58decode(text)
    if len(raw) != PEER_ID_BYTES + CHECKSUM_BYTES:
        raise MalformedInput(
            f"decodes to {len(raw)} bytes, expected {PEER_ID_BYTES + CHECKSUM_BYTES}"
            " (32-byte id + 4-byte checksum)"
        )
    peer_id, check = raw[:PEER_ID_BYTES], raw[PEER_ID_BYTES:]
    if checksum(peer_id) != check:
        raise MalformedInput("checksum does not match (first 4 bytes of BLAKE3 of the id)")
    return peer_id


def canonical_peer_id(text: object) -> tuple[str, str]:
    """``(canonical id, "hex" | "base58")`` for a 64-hex or base58-check id; else raises."""
    if not isinstance(text, str):
        raise MalformedInput(f"expected a string, got {type(text).__name__}")
    token = text.strip()
    if not token:
        raise MalformedInput("empty peer id")
    if len(token) == 2 * PEER_ID_BYTES and set(token) <= _HEX:
        return encode_peer_id(bytes.fromhex(token)), "hex"
    try:
        canonical = encode_peer_id(decode_peer_id(token))
    except MalformedInput as exc:
        if set(token) <= _HEX:
            raise MalformedInput(
                f"{len(token)} hex characters, expected 64; nor base58-check ({exc})"
            ) from None
        raise
    if canonical != token:  # cannot happen for a valid base58 string; kept as a guard
        raise MalformedInput("not in canonical base58 form")
    return canonical, "base58"


# -- legacy stores -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LegacyPeer:
    """One peer of a legacy store: where it was, its id and address as written, other fields."""

    position: str
    raw_id: object
    address: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _show(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return repr(text if len(text) <= 24 else text[:24] + "...")


def _id_and_address(text: str, position: str) -> LegacyPeer:
    """``"ID"`` or ``"ID ADDR"`` (whitespace-separated) as one legacy peer."""
    fields = text.split()
    if len(fields) > 2:
        raise MalformedInput(
            f"{position}: expected 'ID [ADDR]', got {len(fields)} fields in {_show(text)}"
        )
    if len(fields) == 2:
        return LegacyPeer(position, fields[0], fields[1])
    return LegacyPeer(position, text)


def _one_of(item: dict[str, Any], keys: tuple[str, ...], what: str, position: str) -> object:
    """The value under whichever of ``keys`` is present (they must agree), else ``None``."""
    present = [k for k in keys if k in item]
    values = {json.dumps(item[k], sort_keys=True) for k in present}
    if len(values) > 1:
        named = " and ".join(f'"{k}"' for k in present)
        raise MalformedInput(f"{position}: {named} disagree about the {what}")
    return item[present[0]] if present else None


def _json_item(item: object, position: str) -> LegacyPeer:
    if isinstance(item, str):
        return _id_and_address(item, position)
    if isinstance(item, dict):
        raw_id = _one_of(item, ID_KEYS, "peer id", position)
        if raw_id is None:
            raise MalformedInput(f'{position}: object has no "peer" or "id" field')
        address = _one_of(item, ADDRESS_KEYS, "address", position)
        if address is None:
            address = ""
        if not isinstance(address, str):
            raise MalformedInput(f"{position}: address must be a string, got {_show(address)}")
        extra = {k: v for k, v in item.items() if k not in ID_KEYS + ADDRESS_KEYS}
        return LegacyPeer(position, raw_id, address.strip(), extra)
    raise MalformedInput(
        f"{position}: expected a peer id string or an object with \"peer\" or \"id\","
        f" got {_show(item)}"
    )


def _non_finite(document: object) -> tuple[list[object], float] | None:
    """The path (keys and indexes) to the first NaN or infinity in ``document``, and the
    value; ``None`` when there is none. Iterative, so any nesting the parser took is fine."""
    stack: list[tuple[list[object], object]] = [([], document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return path, value
        if isinstance(value, dict):
            children = list(value.items())
        elif isinstance(value, list):
            children = list(enumerate(value))
        else:
            continue
        stack.extend((path + [key], child) for key, child in reversed(children))
    return None


def _where(path: list[object]) -> str:
    """``index 3: field "meta.scores[1]"`` (the position in the peer list, then the field)."""
    position = ""
    if path[:1] == ["peers"] and len(path) > 1 and isinstance(path[1], int):
        path = path[1:]  # {"peers": [...]}: positions count in the list, as elsewhere
    if path and isinstance(path[0], int):
        position, path = f"index {path[0]}", path[1:]
    field = ""
    for key in path:
        field += f"[{key}]" if isinstance(key, int) else (f".{key}" if field else str(key))
    named = f"field {json.dumps(field)}" if field else ""
    return ": ".join(part for part in (position, named) if part) or "top level"


def _refuse_non_finite(document: object) -> None:
    """``MalformedInput`` naming the first NaN or infinity in ``document`` (not JSON)."""
    found = _non_finite(document)
    if found is not None:
        path, value = found
        if math.isnan(value):
            raise MalformedInput(f"{_where(path)}: NaN is not a JSON number")
        raise MalformedInput(
            f"{_where(path)}: {'' if value > 0 else '-'}Infinity is not a JSON number (nor is"
            " a number too large for a float, such as 1e999)"
        )


def read_legacy_peers(text: str) -> list[LegacyPeer]:
    """Parse a legacy peer store (JSON or text); raises ``MalformedInput`` with a position
    (also for a NaN or infinity anywhere in a JSON store: ``_refuse_non_finite``)."""
    stripped = text.lstrip()
    if not stripped:
        raise MalformedInput("empty file: no peers to migrate (refusing to write an empty store)")
    if stripped[:1] in ("[", "{"):
        document = load_json_strict(text)
        _refuse_non_finite(document)
        items = document.get("peers") if isinstance(document, dict) else document
        if not isinstance(items, list):
            raise MalformedInput(
                "expected a JSON list of peers, or an object with a \"peers\" list"
            )
        return [_json_item(item, f"index {i}") for i, item in enumerate(items)]
    peers = []
    for lineno, line in enumerate(text.splitlines(), 1):
        token = line.strip()
        if token and not token.startswith("#"):
            peers.append(_id_and_address(token, f"line {lineno}"))
    return peers


@dataclass(frozen=True, slots=True)
class CanonicalPeer:
    """A peer after migration: canonical id, address (may be empty), other legacy fields."""

    id: str
    address: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Migration:
    """The canonical peers of a legacy store and what was done to get them."""

    peers: tuple[CanonicalPeer, ...]
    converted_hex: int
    kept_base58: int
    duplicates: int


def canonicalise_peers(legacy: list[LegacyPeer]) -> Migration:
    """Canonicalise every id; the first malformed one raises, naming its position.

    The message also says how many more ids are malformed, so one run finds them all.
    """
    peers: dict[str, CanonicalPeer] = {}
    counts = {"hex": 0, "base58": 0}
    duplicates = 0
    errors: list[str] = []
    for peer in legacy:
        try:
            canonical, kind = canonical_peer_id(peer.raw_id)
        except MalformedInput as exc:
            errors.append(f"{peer.position}: malformed peer id {_show(peer.raw_id)}: {exc}")
            continue
        counts[kind] += 1
        if canonical in peers:
            duplicates += 1
            continue
        peers[canonical] = CanonicalPeer(canonical, peer.address, peer.extra)
    if errors:
        more = f" (and {len(errors) - 1} more malformed)" if len(errors) > 1 else ""
        raise MalformedInput(errors[0] + more)
    return Migration(tuple(peers.values()), counts["hex"], counts["base58"], duplicates)


def node_store_text(peers: tuple[CanonicalPeer, ...] | list[CanonicalPeer], *, now: float) -> str:
    """The peer store the node reads: keys sorted, 2-space indent, no trailing newline."""
    entries = [{"address": p.address, "id": p.id, "last_seen": int(now)} for p in peers]
    return json.dumps({"peers": entries}, sort_keys=True, indent=2, allow_nan=False)


def rich_store_text(
    peers: tuple[CanonicalPeer, ...] | list[CanonicalPeer], *, now: float, source: Path
) -> str:
    """releasesim's audit layout (``--format rich``): provenance and every legacy field."""
    entries = []
    for p in peers:
        address = {"address": p.address} if p.address else {}
        entries.append({"id": p.id, **address, **p.extra, "migrated_at": int(now)})
    document = {
        "version": 1, "format": FORMAT, "migrated_at": int(now), "source": str(source),
        "peers": entries,
    }
    return json.dumps(document, indent=2, allow_nan=False) + "\n"


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file, fsync, ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """What ``migrate_overlay_store`` wrote."""

    old: Path
    new: Path
    old_exists: bool
    store_format: str
    peers: int
    converted_hex: int
    kept_base58: int
    duplicates: int
    migrated_at: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": str(self.old),
            "new": str(self.new),
            "old_exists": self.old_exists,
            "format": self.store_format,
            "peers": self.peers,
            "converted_hex": self.converted_hex,
            "kept_base58": self.kept_base58,
            "duplicates": self.duplicates,
            "migrated_at": self.migrated_at,
        }


def migrate_overlay_store(
    old: str | Path, new: str | Path, *, now: float, force: bool = False,
    store_format: str = "node",
) -> MigrationReport:
    """Migrate the legacy peer store ``old`` to the store ``new`` (``node`` or ``rich`` format).

    A missing ``old`` means no peers. Raises ``InputError`` (unreadable ``old``, existing
    ``new`` without ``force``, unwritable ``new``, unknown format) or ``MalformedInput``
    naming ``old`` and the position of a bad entry. Nothing is written unless every entry
    migrates.
    """
    if store_format not in STORE_FORMATS:
        raise InputError(f"store format {store_format!r}: expected one of {STORE_FORMATS}")
    old_path, new_path = Path(old).expanduser(), Path(new).expanduser()
    try:
        text: str | None = old_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"legacy peer store {old_path}: cannot read: {exc}") from None
    if new_path.resolve() == old_path.resolve():
        raise InputError(f"peer store {new_path}: is the legacy store itself; choose another NEW")
    if new_path.exists() and not force:
        raise InputError(f"peer store {new_path}: already exists; pass --force to replace it")
    if new_path.is_dir():
        raise InputError(f"peer store {new_path}: is a directory")
    try:
        migration = canonicalise_peers([] if text is None else read_legacy_peers(text))
    except MalformedInput as exc:
        raise MalformedInput(f"{old_path}: {exc}") from None
    try:  # strict JSON (allow_nan=False): the check above already refused NaN and infinity
        if store_format == "node":
            document = node_store_text(migration.peers, now=now)
        else:
            document = rich_store_text(migration.peers, now=now, source=old_path.resolve())
    except (ValueError, OverflowError) as exc:  # e.g. a NaN or infinite ``now``
        raise InputError(f"peer store {new_path}: cannot write strict JSON: {exc}") from None
    try:
        write_text_atomic(new_path, document)
    except OSError as exc:
        raise InputError(f"peer store {new_path}: cannot write: {exc}") from None
    return MigrationReport(
        old_path, new_path, text is not None, store_format, len(migration.peers),
        migration.converted_hex, migration.kept_base58, migration.duplicates, int(now),
    )
