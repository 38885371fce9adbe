"""The store's JSON codec: compact encoding, with large payloads kept as blobs.

Payload storage: a sourced input is stored as ``{"ref": [step_id, handle]}`` (the
payload lives once, on the producer's outputs); JSON payloads over 256 KiB go to the
file store as ``{"blob": id}``. Both are resolved on read (:mod:`store.sqlite_query`);
:func:`inline_blobs` replaces a blob marker by the JSON it points to.

Values JSON cannot hold raise :class:`~engine.contracts.errors.StorageError` naming their owner
(:func:`dumps`), so a block returning a non-JSON value fails with a fix, not a trace.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import math
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from engine.contracts.bounded import paired_json
from engine.contracts.errors import StorageError
from engine.contracts.values import Payload

if TYPE_CHECKING:
    from engine.contracts.events import InputRecord
    from store.files import LocalFileStore

#: JSON payloads whose encoding is larger than this are kept in the file store.
PAYLOAD_INLINE_LIMIT = 256 * 1024


def _json_default(value: Any) -> Any:
    if isinstance(value, Payload):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        to_dict = getattr(value, "to_dict", None)
        return to_dict() if callable(to_dict) else dataclasses.asdict(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, _dt.datetime | _dt.date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"a value of type {type(value).__name__} is not JSON")


def _make_stdlib_encoder(default: Callable[[Any], Any] = _json_default) -> Callable[[Any], str]:
    """The standard library's compact JSON encoder (ASCII output). The C encoder is built
    once here: ``JSONEncoder.encode`` rebuilds it on every call, which triples the cost of
    encoding a small payload."""
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is None:  # pragma: no cover - CPython always has it
        encoder = json.JSONEncoder(separators=(",", ":"), default=default)
        return encoder.encode
    iterencode = c_make_encoder(
        None, default, json.encoder.encode_basestring_ascii, None, ":", ",",
        False, False, True,
    )

    def encode(value: Any) -> str:
        return "".join(iterencode(value, 0))

    return encode


#: The standard library's encoder: what definitions are hashed with (their ids must not
#: change).
encode_stdlib = _make_stdlib_encoder()


def _finite(value: Any) -> Any:
    """``value`` with every ``NaN`` and infinity replaced by None (containers copied)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


_encode_stdlib_finite = _make_stdlib_encoder(lambda value: _finite(_json_default(value)))


def _encode_refused(value: Any) -> str:
    """What orjson refuses (integers beyond 64 bits, strings holding lone surrogates),
    by the standard library, with ``NaN`` and infinities as ``null`` as orjson writes
    them, and each surrogate pair joined into its character, each lone surrogate
    replaced by U+FFFD (:func:`~engine.contracts.bounded.paired`): a lone surrogate
    written as an escape would read back as a string no UTF-8 output can hold. Rare, so
    the copies :func:`_finite` and ``paired_json`` make, and the second encoding, do not
    matter."""
    text = _encode_stdlib_finite(_finite(value))
    if "\\ud" in text:  # a surrogate, written as an escape (ensure_ascii writes lower case)
        text = _encode_stdlib_finite(paired_json(json.loads(text)))
    return text


# Dataclasses and datetimes go to _json_default as they do with the standard library (a
# dataclass's own to_dict, a date's isoformat), not to orjson's own forms.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
# Keys that are not strings written as strings, as the standard library does; slower, so
# only once a value was refused without it.
_ORJSON_ANY_KEYS = _ORJSON_OPTIONS | orjson.OPT_NON_STR_KEYS


def encode(value: Any) -> str:
    """Compact JSON text of ``value`` (Payloads, dataclasses, models, dates... as JSON).

    Encoded by orjson, about ten times faster than the standard library on a step's
    payloads, which every step writes. The text is UTF-8 (not ``\\u`` escapes); ``NaN``
    and infinities are written ``null``, as JSON has no spelling for them; dict keys that
    are not strings are written as strings. Integers beyond 64 bits and lone surrogates
    (escaped) go to the standard library's encoder, so everything it encodes still
    encodes.

    Raises:
        TypeError: a value neither encoder can write (``default`` raised it).
        ValueError, RecursionError: from the standard library's encoder.
    """
    try:
        return orjson.dumps(value, default=_json_default, option=_ORJSON_OPTIONS).decode()
    except orjson.JSONEncodeError:
        try:
            return orjson.dumps(value, default=_json_default, option=_ORJSON_ANY_KEYS).decode()
        except orjson.JSONEncodeError:
            return _encode_refused(value)


def dumps(value: Any, what: str, owner: str,
          encoder: Callable[[Any], str] | None = None) -> str:
    """Encode ``value`` (with :func:`encode`, or ``encoder``); a value JSON cannot hold is a
    StorageError naming its owner."""
    try:
        return (encoder or encode)(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise StorageError(
            f"cannot store the {what} of {owner!r}: {exc}. Blocks must return "
            "JSON-compatible data (dict, list, str, int, float, bool, None); files go "
            "through the file store as FileRefs."
        ) from exc


def loads(raw: str | bytes | None) -> Any:
    """Decode a JSON column (text, or bytes written by :func:`pack`); SQL NULL is None."""
    if raw is None:
        return None
    if isinstance(raw, bytes):
        return json.loads(zlib.decompress(raw))
    return json.loads(raw)


#: JSON texts shorter than this are stored as they are by :func:`pack`.
PACK_MIN_CHARS = 4096


def pack(text: str) -> str | bytes:
    """A JSON document as stored in a column :func:`loads` reads: zlib-compressed bytes
    when it is long and that is smaller, else the text itself.

    For workflow definitions, which repeat the same block shape hundreds of times: a
    1,000-block definition shrinks about twentyfold.
    """
    if len(text) < PACK_MIN_CHARS:
        return text
    packed = zlib.compress(text.encode(), 1)  # level 6 is 3x slower, hardly smaller
    return packed if len(packed) < len(text) else text



@dataclasses.dataclass(slots=True)
class EncodedDefinition:
    """A workflow definition as the ``definitions`` table holds it."""

    #: The dict it was encoded from (held: the cache below compares identities).
    source: Any
    #: Its compact JSON text.
    text: str
    #: The row id: 32 hex digits of the text's sha256.
    id: str
    _packed: str | bytes | None = None

    def packed(self) -> str | bytes:
        """The column value (:func:`pack`), computed on first use."""
        if self._packed is None:
            self._packed = pack(self.text)
        return self._packed


#: The definitions encoded last, by ``id()`` of their dict, least recently used first
#: (each entry holds its dict, so an id is not reused while its entry lives).
_RECENT_DEFINITIONS: OrderedDict[int, EncodedDefinition] = OrderedDict()
#: As many as :func:`engine.graph.compile_shared` keeps compiled graphs.
_RECENT_LIMIT = 32
_RECENT_LOCK = threading.Lock()


def encoded_definition(definition: Any, owner: str) -> EncodedDefinition:
    """``definition`` encoded, hashed (and packed when asked), once per dict object.

    Runs of one shared compiled graph (:func:`engine.graph.compile_shared`) pass the same
    dict, which nothing changes, and a 1,000-block definition takes milliseconds to
    encode, hash and compress: the last few dozen are kept (a test suite or a server
    alternates between workflows). Do not change a dict once stored.

    Raises:
        StorageError: the definition holds a value JSON cannot (naming ``owner``).
    """
    key = id(definition)
    with _RECENT_LOCK:
        known = _RECENT_DEFINITIONS.get(key)
        if known is not None and known.source is definition:
            _RECENT_DEFINITIONS.move_to_end(key)
            return known
    # the standard library's text: a definition's id must not change with the encoder
    text = dumps(definition, "definition", owner, encoder=encode_stdlib)
    encoded = EncodedDefinition(definition, text, hashlib.sha256(text.encode()).hexdigest()[:32])
    with _RECENT_LOCK:
        _RECENT_DEFINITIONS[key] = encoded
        _RECENT_DEFINITIONS.move_to_end(key)
        while len(_RECENT_DEFINITIONS) > _RECENT_LIMIT:
            _RECENT_DEFINITIONS.popitem(last=False)
    return encoded


def encode_inputs(
    inputs: Mapping[str, InputRecord], step_id: str, files: LocalFileStore
) -> str:
    """Encode a step's inputs; a sourced input becomes ``{"ref": [step_id, handle]}``."""
    out: dict[str, Any] = {}
    for handle, rec in inputs.items():
        if rec.source_step is not None:
            out[handle] = {"ref": [rec.source_step, rec.source_handle or handle]}
        else:
            out[handle] = rec.payload.to_dict()
    try:  # dumps(), inlined: every step's inputs
        text = encode(out)
    except (TypeError, ValueError, RecursionError):
        text = dumps(out, "inputs", step_id)  # raises, naming the step
    if len(text) <= PAYLOAD_INLINE_LIMIT:
        return text
    return _slim_map(out, files)


def encode_map(values: dict[str, Any], what: str, owner: str, files: LocalFileStore) -> str:
    """Encode a handle map; entries over the inline limit become ``{"blob": id}``."""
    try:  # dumps(), inlined: every step's outputs
        text = encode(values)
    except (TypeError, ValueError, RecursionError):
        text = dumps(values, what, owner)  # raises, naming the owner
    if len(text) <= PAYLOAD_INLINE_LIMIT:
        return text
    return _slim_map(values, files)


def _slim_map(values: dict[str, Any], files: LocalFileStore) -> str:
    """A handle map encoded with its entries over the inline limit as ``{"blob": id}``."""
    slim = {}
    for key, value in values.items():
        encoded = encode(value)
        if len(encoded) > PAYLOAD_INLINE_LIMIT:
            slim[key] = {"blob": files.put_json_blob(encoded.encode())}
        else:
            slim[key] = value
    return encode(slim)


def encode_value(value: Any, what: str, owner: str, files: LocalFileStore) -> str:
    """Encode a whole JSON column, moved to a blob when over the inline limit."""
    try:  # dumps(), inlined: every artifact
        text = encode(value)
    except (TypeError, ValueError, RecursionError):
        text = dumps(value, what, owner)  # raises, naming the owner
    if len(text) > PAYLOAD_INLINE_LIMIT:
        return encode({"blob": files.put_json_blob(text.encode())})
    return text


def decode_outputs(raw: str | None, files: LocalFileStore) -> dict[str, Payload]:
    """Stored outputs as Payloads, blobs inlined."""
    values = loads(raw) or {}
    return {h: Payload.from_dict(inline_blobs(v, files)) for h, v in values.items()}


def inline_blobs(value: Any, files: LocalFileStore, cache: dict[str, Any] | None = None) -> Any:
    """Replace a ``{"blob": id}`` marker by the JSON it points to."""
    if isinstance(value, dict) and len(value) == 1 and "blob" in value:
        blob_id = value["blob"]
        if cache is not None and blob_id in cache:
            return cache[blob_id]
        decoded = json.loads(files.get_json_blob(blob_id))
        if cache is not None:
            cache[blob_id] = decoded
        return decoded
    return value
