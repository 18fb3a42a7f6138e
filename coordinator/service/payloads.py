"""Payloads and groups: what a deployment runs (scripts, artifacts) and where (device groups).

Service functions take `(session, principal, ...)`, check the caller's client and role, and
return plain dicts shaped like the proto messages. Lookups the deployment service uses when a
deployment is created or initialized take `(session, client_id, ...)` and return store rows:
`get_script`, `get_artifact`, `group_device_ids`, `validate_parameters`.

Artifacts are stored content-addressed in the store (`blobs` + `blob_chunks`, one row per MiB),
so every coordinator on the same database serves them. An upload is the exception to "one
session per call": `store_artifact` takes the `Store`, because a long upload must not hold a
transaction (on SQLite, the single write lock) while bytes trickle in over the network. It:
1. checks the caller and the name, and registers a temporary blob `upload-<uuid>` (short tx);
2. hashes while writing each 1 MiB chunk row under that temporary key (one short tx per row);
3. in one short tx: if a blob with the final sha256 already exists, drops the temporary rows
   (one copy of the bytes, whoever uploaded it first); else inserts the blob and re-keys the
   chunk rows to it. Then records the artifact.
A failed upload deletes its temporary rows; one that died with its coordinator is swept by the
next upload once older than a day. Two coordinators finishing the same bytes at once race on the
blob's primary key; the loser retries step 3 and finds the winner's blob.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common.errors import Conflict, InvalidArgument, NotFound
from common.ids import new_id, parse_uuid
from common.timefmt import iso_or_empty
from coordinator.auth import Principal
from coordinator.service import audit_log
from coordinator.service.audit_log import action
from coordinator.store import models as m
from coordinator.store.db import Store

log = logging.getLogger("convoy.payloads")

INTERPRETERS = ("sh", "bash", "python", "powershell")
PARAMETER_TYPES = ("string", "integer", "number", "boolean")
CHUNK_BYTES = 1024 * 1024
MAX_ARTIFACT_BYTES = 2 * 1024 * 1024 * 1024
TEMP_PREFIX = "upload-"  # a real key is 64 hex digits, so the two can never collide
STALE_UPLOAD = timedelta(days=1)
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # parameters reach scripts as env vars
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


# --- shared ---------------------------------------------------------------------------------

def _name(value: str, parameter: str, limit: int) -> str:
    name = (value or "").strip()
    if not name:
        raise InvalidArgument(f"{parameter} must not be empty", parameter=parameter)
    if len(name) > limit:
        raise InvalidArgument(f"{parameter} is longer than {limit} characters", parameter=parameter)
    return name


def _clients_in_scope(s: Session, who: Principal, client_id: str) -> list[str]:
    """For list calls: the given client (checked), or every client the token can see."""
    if client_id:
        cid = parse_uuid(client_id, "clientId")
        who.require_client(s, cid)
        return [cid]
    return who.visible_clients(s)


def _owned(s: Session, who: Principal, model: Any, row_id: str, client_id: str, what: str,
           parameter: str) -> Any:
    """A row by id, in `client_id` if given, else in any client the token can see; else 404."""
    rid = parse_uuid(row_id, parameter)
    if client_id:
        cid = parse_uuid(client_id, "clientId")
        who.require_client(s, cid)
    row = s.get(model, rid)
    if row is None or (client_id and row.client_id != cid) or not who.can_see(row.client_id):
        raise NotFound(f"{what} not found", **{parameter: rid})
    return row


# --- groups ---------------------------------------------------------------------------------

def _group_dicts(s: Session, groups: list[m.Group]) -> list[dict[str, Any]]:
    members: dict[str, list[str]] = {g.id: [] for g in groups}
    if groups:
        rows = s.execute(select(m.GroupMember.group_id, m.GroupMember.device_id)
                         .where(m.GroupMember.group_id.in_(list(members))))
        for group_id, device_id in rows:
            members[group_id].append(device_id)
    return [{"id": g.id, "client_id": g.client_id, "name": g.name, "device_ids": sorted(members[g.id]),
             "created_at": iso_or_empty(g.created_at)} for g in groups]


@action("group.create")
def create_group(s: Session, who: Principal, client_id: str, name: str, now: datetime) -> dict[str, Any]:
    cid = who.default_client(s, client_id)
    who.require_role("operator", "create groups")
    name = _name(name, "name", 200)
    if s.scalar(select(m.Group.id).where(m.Group.client_id == cid, m.Group.name == name)) is not None:
        raise Conflict(f"a group named {name!r} already exists in this client", name=name)
    group = m.Group(id=new_id(), client_id=cid, name=name, created_at=now)
    s.add(group)
    try:
        s.flush()
    except IntegrityError:  # created concurrently by another call
        raise Conflict(f"a group named {name!r} already exists in this client", name=name) from None
    return _group_dicts(s, [group])[0]


def list_groups(s: Session, who: Principal, client_id: str = "") -> list[dict[str, Any]]:
    clients = _clients_in_scope(s, who, client_id)
    if not clients:
        return []
    groups = list(s.scalars(select(m.Group).where(m.Group.client_id.in_(clients))
                            .order_by(m.Group.name, m.Group.id)))
    return _group_dicts(s, groups)


def show_group(s: Session, who: Principal, group_id: str, client_id: str = "") -> dict[str, Any]:
    return _group_dicts(s, [_owned(s, who, m.Group, group_id, client_id, "Group", "group_id")])[0]


def _client_devices(s: Session, client_id: str, device_ids: Iterable[str]) -> list[str]:
    """Canonical ids, each a UUID of a device in `client_id` (400 / 404 naming the first bad one)."""
    ids = list(dict.fromkeys(parse_uuid(d, "device_ids") for d in device_ids))
    if not ids:
        raise InvalidArgument("at least one device id is required", parameter="device_ids")
    found = set(s.scalars(select(m.Device.id).where(m.Device.client_id == client_id, m.Device.id.in_(ids))))
    missing = [d for d in ids if d not in found]
    if missing:
        raise NotFound(f"device {missing[0]} not found in this client", device_id=missing[0], missing=missing)
    return ids


@action("group.add_members")
def add_group_members(s: Session, who: Principal, group_id: str, device_ids: Iterable[str],
                      client_id: str = "") -> dict[str, Any]:
    """Idempotent: a device already in the group stays in it once."""
    group = _owned(s, who, m.Group, group_id, client_id, "Group", "group_id")
    who.require_role("operator", "change group members")
    ids = _client_devices(s, group.client_id, device_ids)
    present = set(s.scalars(select(m.GroupMember.device_id).where(
        m.GroupMember.group_id == group.id, m.GroupMember.device_id.in_(ids))))
    s.add_all(m.GroupMember(group_id=group.id, device_id=d) for d in ids if d not in present)
    s.flush()
    return _group_dicts(s, [group])[0]


@action("group.remove_members")
def remove_group_members(s: Session, who: Principal, group_id: str, device_ids: Iterable[str],
                         client_id: str = "") -> dict[str, Any]:
    """Idempotent: removing a device that is not a member is a no-op (it must still exist)."""
    group = _owned(s, who, m.Group, group_id, client_id, "Group", "group_id")
    who.require_role("operator", "change group members")
    ids = _client_devices(s, group.client_id, device_ids)
    s.execute(delete(m.GroupMember).where(m.GroupMember.group_id == group.id,
                                          m.GroupMember.device_id.in_(ids)))
    return _group_dicts(s, [group])[0]


def group_device_ids(s: Session, client_id: str, group_ids: Iterable[str], *,
                     field: str | None = None) -> set[str]:
    """The union of the groups' members. A group missing from the client is a 404 naming it,
    or, with `field` (e.g. "targetConfig.groupIds"), a 400 naming that field."""
    ids = list(dict.fromkeys(parse_uuid(g, field or "group_ids") for g in group_ids))
    found = set(s.scalars(select(m.Group.id).where(m.Group.client_id == client_id, m.Group.id.in_(ids))))
    for gid in ids:
        if gid not in found:
            if field:
                raise InvalidArgument(f"{field}: group {gid} not found", parameter=field, group_id=gid)
            raise NotFound(f"group {gid} not found", group_id=gid)
    if not ids:
        return set()
    return set(s.scalars(select(m.GroupMember.device_id).where(m.GroupMember.group_id.in_(ids))))


# --- scripts --------------------------------------------------------------------------------

def parse_parameters_schema(text: str) -> dict[str, Any]:
    """The stored form of a script's parameters schema ({} when none), or a 400 saying what is wrong.

    The subset: {"type": "object", "properties": {NAME: {"type": T, "description"?, "default"?,
    "enum"?}}, "required": [NAME…], "additionalProperties"?: bool, "description"?}, with T one of
    string, integer, number, boolean. Any other keyword is refused rather than silently ignored.
    """
    if not text or not text.strip():
        return {}
    param = "parameters_schema"
    try:
        schema = json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(f"{param} is not valid JSON: {exc}", parameter=param) from None

    def bad(where: str, why: str) -> InvalidArgument:
        return InvalidArgument(f"{param}{where}: {why}", parameter=param, at=where or "/")

    if not isinstance(schema, dict):
        raise bad("", "must be a JSON object")
    extra = set(schema) - {"type", "properties", "required", "additionalProperties", "description", "$schema", "title"}
    if extra:
        raise bad("", f"unsupported keyword {sorted(extra)[0]!r}")
    if schema.get("type", "object") != "object":
        raise bad(".type", 'must be "object"')
    props = schema.get("properties", {})
    if not isinstance(props, dict):
        raise bad(".properties", "must be an object")
    for name, spec in props.items():
        where = f".properties.{name}"
        if not _PARAM_NAME.match(name):
            raise bad(where, "parameter names are letters, digits and _, not starting with a digit")
        if not isinstance(spec, dict):
            raise bad(where, "must be an object")
        unknown = set(spec) - {"type", "description", "default", "enum", "secret"}
        if unknown:
            raise bad(where, f"unsupported keyword {sorted(unknown)[0]!r}")
        if spec.get("type") not in PARAMETER_TYPES:
            raise bad(f"{where}.type", f"must be one of {', '.join(PARAMETER_TYPES)}")
        if "secret" in spec:  # write-only: sealed at rest, never shown (docs/payloads.md)
            if not isinstance(spec["secret"], bool):
                raise bad(f"{where}.secret", "must be true or false")
            if spec["secret"] and (spec["type"] != "string" or "default" in spec or "enum" in spec):
                raise bad(f"{where}.secret", "a secret parameter is a string with no default and no enum "
                                             "(they would be readable in the schema)")
        if "enum" in spec:
            if not isinstance(spec["enum"], list) or not spec["enum"]:
                raise bad(f"{where}.enum", "must be a non-empty list")
            for value in spec["enum"]:
                if not _has_type(value, spec["type"]):
                    raise bad(f"{where}.enum", f"{value!r} is not a {spec['type']}")
        if "default" in spec and not _has_type(spec["default"], spec["type"]):
            raise bad(f"{where}.default", f"is not a {spec['type']}")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise bad(".required", "must be a list of parameter names")
    for r in required:
        if r not in props:
            raise bad(".required", f"{r!r} is not in properties")
    if not isinstance(schema.get("additionalProperties", False), bool):
        raise bad(".additionalProperties", "must be true or false")
    out: dict[str, Any] = {"type": "object", "properties": props, "required": list(dict.fromkeys(required))}
    if schema.get("additionalProperties"):
        out["additionalProperties"] = True
    if "description" in schema:
        out["description"] = schema["description"]
    return out


def _has_type(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):  # bool is an int in Python, never in JSON Schema
        return False
    if kind == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    return isinstance(value, int | float)  # number


def validate_parameters(schema: dict[str, Any], params: dict[str, Any]) -> None:
    """Check a deployment's script parameters against the script's stored schema.

    Raises InvalidArgument naming `payload.parameters.<name>`: a missing required parameter, a
    value of the wrong type or outside its enum, or a parameter the schema does not declare
    (unless it sets additionalProperties). A script without a schema takes no parameters.
    """
    if not isinstance(params, dict):
        raise InvalidArgument("payload.parameters must be an object", parameter="payload.parameters")
    props: dict[str, Any] = schema.get("properties", {}) if schema else {}
    for name in schema.get("required", []) if schema else []:
        if name not in params:
            field = f"payload.parameters.{name}"
            raise InvalidArgument(f"{field} is required", parameter=field)
    for name, value in params.items():
        field = f"payload.parameters.{name}"
        spec = props.get(name)
        if spec is None:
            if schema.get("additionalProperties") and _PARAM_NAME.match(str(name)):
                continue
            raise InvalidArgument(f"{field} is not a parameter of this script", parameter=field)
        if not _has_type(value, spec["type"]):
            shown = {} if spec.get("secret") else {"value": value}  # a secret is never echoed
            raise InvalidArgument(f"{field} must be of type {spec['type']}", parameter=field, **shown)
        if "enum" in spec and value not in spec["enum"]:
            raise InvalidArgument(f"{field} must be one of {spec['enum']}", parameter=field, value=value)


def _script_dict(sc: m.Script) -> dict[str, Any]:
    return {"id": sc.id, "client_id": sc.client_id, "name": sc.name, "interpreter": sc.interpreter,
            "body": sc.body, "parameters_schema": json.dumps(sc.parameters_schema) if sc.parameters_schema else "",
            "rollback_body": sc.rollback_body or "", "created_at": iso_or_empty(sc.created_at)}


@action("script.create")
def create_script(s: Session, who: Principal, client_id: str, name: str, interpreter: str, body: str,
                  parameters_schema: str, rollback_body: str, now: datetime) -> dict[str, Any]:
    cid = who.default_client(s, client_id)
    who.require_role("operator", "create scripts")
    name = _name(name, "name", 200)
    if interpreter not in INTERPRETERS:
        raise InvalidArgument(f"interpreter must be one of {', '.join(INTERPRETERS)}",
                              parameter="interpreter", value=interpreter)
    if not body or not body.strip():
        raise InvalidArgument("body must not be empty", parameter="body")
    script = m.Script(id=new_id(), client_id=cid, name=name, interpreter=interpreter, body=body,
                      parameters_schema=parse_parameters_schema(parameters_schema),
                      rollback_body=rollback_body or "", created_at=now)
    s.add(script)
    return _script_dict(script)


def _list_in_scope(s: Session, who: Principal, client_id: str, model: Any,
                   to_dict: Callable[[Any], dict[str, Any]]) -> list[dict[str, Any]]:
    """Every `model` row in the clients the caller may see (or the one it names), oldest first."""
    clients = _clients_in_scope(s, who, client_id)
    if not clients:
        return []
    rows = s.scalars(select(model).where(model.client_id.in_(clients)).order_by(model.created_at, model.id))
    return [to_dict(r) for r in rows]


def _in_client(s: Session, model: Any, client_id: str, row_id: str, what: str, field: str | None) -> Any:
    """The `model` row in `client_id`: 404, or with `field` a 400 naming that field, if absent."""
    key = f"{what}_id"
    row = s.get(model, parse_uuid(row_id, field or key))
    if row is None or row.client_id != client_id:
        if field:
            raise InvalidArgument(f"{field}: {what} {row_id} not found", parameter=field, **{key: row_id})
        raise NotFound(f"{what.capitalize()} not found", **{key: row_id})
    return row


def list_scripts(s: Session, who: Principal, client_id: str = "") -> list[dict[str, Any]]:
    return _list_in_scope(s, who, client_id, m.Script, _script_dict)


def show_script(s: Session, who: Principal, script_id: str, client_id: str = "") -> dict[str, Any]:
    return _script_dict(_owned(s, who, m.Script, script_id, client_id, "Script", "script_id"))


def get_script(s: Session, client_id: str, script_id: str, *, field: str | None = None) -> m.Script:
    """The script row in `client_id`: 404, or with `field` a 400 naming that field, if absent."""
    row: m.Script = _in_client(s, m.Script, client_id, script_id, "script", field)
    return row


# --- artifacts ------------------------------------------------------------------------------

def artifact_kind(name: str) -> str:
    lower = name.lower()
    if lower.endswith(".deb"):
        return "deb"
    if lower.endswith((".tar.gz", ".tgz")):
        return "tar.gz"
    return "file"


def _artifact_name(value: str) -> str:
    name = _name(value, "name", 255)
    # Agents save the artifact under its name: no directories, no way out of their download dir.
    if "/" in name or "\\" in name or "\x00" in name or name in (".", ".."):
        raise InvalidArgument("name must be a plain file name (no / or \\)", parameter="name", value=name)
    return name


def _artifact_dict(a: m.Artifact) -> dict[str, Any]:
    return {"id": a.id, "client_id": a.client_id, "name": a.name, "sha256": a.sha256, "size": a.size,
            "kind": a.kind, "created_at": iso_or_empty(a.created_at)}


def _begin_upload(s: Session, who: Principal, client_id: str, name: str, now: datetime) -> tuple[str, str, str]:
    cid = who.default_client(s, client_id)
    who.require_role("operator", "upload artifacts")
    name = _artifact_name(name)
    stale = select(m.Blob.sha256).where(m.Blob.sha256.like(f"{TEMP_PREFIX}%"),
                                        m.Blob.created_at < now - STALE_UPLOAD)
    stale_keys = list(s.scalars(stale))
    if stale_keys:
        s.execute(delete(m.BlobChunk).where(m.BlobChunk.sha256.in_(stale_keys)))
        s.execute(delete(m.Blob).where(m.Blob.sha256.in_(stale_keys)))
    temp = TEMP_PREFIX + new_id().replace("-", "")
    s.add(m.Blob(sha256=temp, size=0, created_at=now))
    return cid, name, temp


def _finish_upload(s: Session, cid: str, name: str, temp: str, digest: str, size: int,
                   now: datetime) -> dict[str, Any]:
    if s.get(m.Blob, digest) is None:
        s.add(m.Blob(sha256=digest, size=size, created_at=now))
        s.flush()
        s.execute(update(m.BlobChunk).where(m.BlobChunk.sha256 == temp).values(sha256=digest))
    else:
        s.execute(delete(m.BlobChunk).where(m.BlobChunk.sha256 == temp))
    s.execute(delete(m.Blob).where(m.Blob.sha256 == temp))
    # The same bytes under the same name in the same client: the upload was repeated (a retry).
    existing = s.scalar(select(m.Artifact).where(m.Artifact.client_id == cid, m.Artifact.name == name,
                                                 m.Artifact.sha256 == digest))
    if existing is not None:
        return _artifact_dict(existing)
    artifact = m.Artifact(id=new_id(), client_id=cid, name=name, sha256=digest, size=size,
                          kind=artifact_kind(name), created_at=now)
    s.add(artifact)
    return _artifact_dict(artifact)


@action("artifact.upload")
def store_artifact(store: Store, who: Principal, client_id: str, name: str, chunks: Iterable[bytes],
                   now: datetime, *, max_bytes: int = MAX_ARTIFACT_BYTES, replica: str = "") -> dict[str, Any]:
    """Stream `chunks` into the store as one artifact; see the module docstring for the steps.

    400 for a missing or unsafe name, an empty upload, or more than `max_bytes`. Only one
    MiB of the upload is held in memory at a time.
    """
    with store.tx() as s:
        cid, name, temp = _begin_upload(s, who, client_id, name, now)
    try:
        hasher = hashlib.sha256()
        size = seq = 0
        buf = bytearray()

        def write(data: bytes, offset: int) -> None:
            with store.tx() as s:
                s.add(m.BlobChunk(sha256=temp, seq=seq, offset=offset, data=data))

        for chunk in chunks:
            if not chunk:
                continue
            size += len(chunk)
            if size > max_bytes:
                raise InvalidArgument(f"artifact is larger than the {max_bytes}-byte limit",
                                      parameter="data", limit=max_bytes)
            hasher.update(chunk)
            buf += chunk
            while len(buf) >= CHUNK_BYTES:
                write(bytes(buf[:CHUNK_BYTES]), seq * CHUNK_BYTES)
                del buf[:CHUNK_BYTES]
                seq += 1
        if size == 0:
            raise InvalidArgument("the upload is empty", parameter="data")
        if buf:
            write(bytes(buf), seq * CHUNK_BYTES)
        digest = hasher.hexdigest()
        for attempt in range(3):
            try:
                with store.tx() as s:
                    out = _finish_upload(s, cid, name, temp, digest, size, now)
                    audit_log.record(s, who, store_artifact, out, replica, now)  # its own door, so its own row
                    return out
            except IntegrityError:  # another coordinator stored the same blob meanwhile
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")
    except BaseException:
        try:
            with store.tx() as s:
                s.execute(delete(m.BlobChunk).where(m.BlobChunk.sha256 == temp))
                s.execute(delete(m.Blob).where(m.Blob.sha256 == temp))
        except Exception:  # noqa: BLE001 - the next upload sweeps it once stale
            log.warning("could not remove the rows of a failed upload %s", temp, exc_info=True)
        raise


def list_artifacts(s: Session, who: Principal, client_id: str = "") -> list[dict[str, Any]]:
    return _list_in_scope(s, who, client_id, m.Artifact, _artifact_dict)


def show_artifact(s: Session, who: Principal, artifact_id: str, client_id: str = "") -> dict[str, Any]:
    return _artifact_dict(_owned(s, who, m.Artifact, artifact_id, client_id, "Artifact", "artifact_id"))


def get_artifact(s: Session, client_id: str, artifact_id: str, *, field: str | None = None) -> m.Artifact:
    """The artifact row in `client_id`: 404, or with `field` a 400 naming that field, if absent."""
    row: m.Artifact = _in_client(s, m.Artifact, client_id, artifact_id, "artifact", field)
    return row


def _blob(s: Session, sha256: str) -> m.Blob:
    if not _SHA256.match(sha256 or ""):
        raise InvalidArgument("sha256 must be 64 lowercase hex digits", parameter="sha256")
    blob = s.get(m.Blob, sha256)
    if blob is None:
        raise NotFound("blob not found", sha256=sha256)
    return blob


def blob_size(s: Session, sha256: str) -> int:
    return _blob(s, sha256).size


def _first_seq(s: Session, sha256: str, offset: int) -> int | None:
    """The chunk holding byte `offset`, or None at the end; 400 outside [0, size]."""
    size = _blob(s, sha256).size
    if offset < 0 or offset > size:
        raise InvalidArgument(f"offset must be between 0 and {size}", parameter="offset", offset=offset)
    if offset == size:
        return None
    return s.scalar(select(m.BlobChunk.seq).where(m.BlobChunk.sha256 == sha256, m.BlobChunk.offset <= offset)
                    .order_by(m.BlobChunk.offset.desc()).limit(1))


def _chunk(s: Session, sha256: str, seq: int, offset: int) -> tuple[int, bytes] | None:
    row = s.execute(select(m.BlobChunk.offset, m.BlobChunk.data)
                    .where(m.BlobChunk.sha256 == sha256, m.BlobChunk.seq == seq)).first()
    if row is None:
        return None
    start, data = row
    if offset > start:  # only the first chunk of a resumed download starts mid-row
        return offset, bytes(data[offset - start:])
    return start, bytes(data)


def read_blob(s: Session, sha256: str, offset: int = 0) -> Iterator[tuple[int, bytes]]:
    """The blob's bytes from `offset` on, as (offset of the first byte, bytes) pieces of at
    most 1 MiB, read one row at a time. `offset == size` yields nothing; past it is a 400.

    Checks run on the first `next()`, as for any generator. The session stays in use for the
    whole iteration: a download stream should use `stream_blob`, which does not.
    """
    seq = _first_seq(s, sha256, offset)
    while seq is not None and (piece := _chunk(s, sha256, seq, offset)) is not None:
        yield piece
        seq += 1


def stream_blob(store: Store, sha256: str, offset: int = 0) -> Iterator[tuple[int, bytes]]:
    """As `read_blob`, with a short read session per chunk, so a slow download never holds a
    transaction open (on SQLite a session holds the single write lock). Blobs are immutable,
    so reading them across sessions is consistent."""
    with store.read() as s:
        seq = _first_seq(s, sha256, offset)
    while seq is not None:
        with store.read() as s:
            piece = _chunk(s, sha256, seq, offset)
        if piece is None:
            return
        yield piece
        seq += 1
