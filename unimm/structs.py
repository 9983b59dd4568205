"""msgspec twins of pydantic record models, derived field by field from the models themselves.

A partition's merged records come back from unimm's own Parquet once per chain: ~9,600 images,
~1M nested records, 100 MB of JSON. pydantic-core builds them in ~2.0 CPU-s, msgspec in ~0.35,
and the Structs are freed in a fraction of the time. The twin has the model's field names, order,
types, defaults, length/bound constraints and the model's own properties and methods, so code that
reads records by attribute takes either; it has no pydantic methods (`record_json` gives either's
JSON; `msgspec.structs.replace` is `model_copy(update=...)`).

Only models without custom validators can have a twin (a validator's rule could not be mirrored):
deriving one from such a model is an error, so a validator added later cannot be skipped silently.
"""

from __future__ import annotations

import re
import types
import typing
from functools import cache
from typing import Annotated, Any

import annotated_types as at
import msgspec
from pydantic import BaseModel

_BOUNDS = {
    at.Ge: "ge",
    at.Gt: "gt",
    at.Le: "le",
    at.Lt: "lt",
    at.MinLen: "min_length",
    at.MaxLen: "max_length",
}
_PATH = re.compile(r"\$\[(\d+)\]((?:\.\w+|\[\d+\])*)")


def _meta(metadata: list[Any]) -> msgspec.Meta | None:
    bounds = {}
    for m in metadata:
        for kind, name in _BOUNDS.items():
            if isinstance(m, kind):
                bounds[name] = getattr(m, name)
    return msgspec.Meta(**bounds) if bounds else None


def _twin_type(tp: Any) -> Any:
    """The annotation with every pydantic model replaced by its twin (other metadata dropped)."""
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return struct_type(tp)
    if origin is Annotated:
        return _twin_type(typing.get_args(tp)[0])
    if origin is list:
        return list[_twin_type(typing.get_args(tp)[0])]  # type: ignore[misc]
    if origin in (typing.Union, types.UnionType):
        return typing.Union[tuple(_twin_type(a) for a in typing.get_args(tp))]  # noqa: UP007
    return tp


@cache
def struct_type(model: type[BaseModel]) -> type[msgspec.Struct]:
    """The msgspec Struct twin of `model` (cached: one class per model)."""
    decorators = model.__pydantic_decorators__
    if decorators.field_validators or decorators.model_validators:
        raise TypeError(f"{model.__name__} has custom validators: a msgspec twin would skip them")
    fields: list[tuple[str, Any, Any]] = []
    for name, f in model.model_fields.items():
        tp = _twin_type(f.annotation)
        meta = _meta(f.metadata)
        if meta is not None:
            tp = Annotated[tp, meta]
        if f.default_factory is not None:
            fields.append((name, tp, msgspec.field(default_factory=f.default_factory)))  # type: ignore[arg-type]
        elif f.is_required():
            fields.append((name, tp, msgspec.NODEFAULT))
        else:
            fields.append((name, tp, f.default))
    forbid = model.model_config.get("extra") == "forbid"
    # No reference cycles are possible in a record: the cycle collector need not track them.
    return msgspec.defstruct(
        model.__name__,
        fields,
        namespace=_behaviour(model),
        kw_only=True,
        forbid_unknown_fields=forbid,
        gc=False,
        module=__name__,
    )


def _behaviour(model: type[BaseModel]) -> dict[str, Any]:
    """The properties and public methods the model's own classes define (e.g. MergedImage.kinds)."""
    out: dict[str, Any] = {}
    for cls in reversed(model.__mro__[: model.__mro__.index(BaseModel)]):
        for name, value in vars(cls).items():
            if isinstance(value, property) or (callable(value) and not name.startswith("_")):
                out[name] = value
    return out


@cache
def list_decoder(model: type[BaseModel]) -> msgspec.json.Decoder:
    """A JSON decoder of a list of `model`'s twins."""
    return msgspec.json.Decoder(list[struct_type(model)])  # type: ignore[valid-type]


def record_json(record: BaseModel | msgspec.Struct) -> bytes:
    """A record's JSON, the same bytes for a model and its twin (pydantic's `model_dump_json`:
    fields in order, compact; floats would differ only at or above 1e16, which no record holds)."""
    if isinstance(record, BaseModel):
        return record.model_dump_json().encode()
    return msgspec.json.encode(record)


def error_location(e: msgspec.ValidationError) -> tuple[int | None, str | None, str]:
    """(list index, dotted field path, message) of a list decoder's error, e.g. `$[3].qas[0].answer`
    -> (3, "qas.0.answer", "Expected `str`, got `int`")."""
    message, _, where = str(e).partition(" - at `")
    m = _PATH.match(where.rstrip("`"))
    if m is None:
        return None, None, message
    field = re.sub(r"\[(\d+)\]", r".\1", m.group(2)).lstrip(".")
    return int(m.group(1)), field or None, message
