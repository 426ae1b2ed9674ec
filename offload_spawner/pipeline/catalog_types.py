"""The catalog's building blocks: its base model and checked scalar types.

Apart from :mod:`offload_spawner.pipeline.catalog` so that a backend module
(:mod:`offload_spawner.backends`) can declare its settings model with them
while the catalog imports the backends to assemble its ``Target`` model.
Every string that later reaches a pod annotation or a batch-system flag is
typed and pattern-checked by one of these types.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
    WithJsonSchema,
)

from .units import QuantityError, format_memory, parse_memory


def _memory(value: Any) -> int:
    try:
        return parse_memory(value)
    except QuantityError as e:
        raise ValueError(str(e)) from None


Memory = Annotated[
    int,
    BeforeValidator(_memory),
    PlainSerializer(format_memory, return_type=str),
    # What admins may write: a size ("8G") or a number of bytes.
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "number", "exclusiveMinimum": 0}]}),
]


@dataclass(frozen=True)
class Pattern(AfterValidator):
    """A full-match check with our own message, published in the JSON schema
    (as an anchored ``pattern``) so that editors refuse what the hub refuses."""

    regex: str = ""

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        schema = handler(core_schema)
        schema["pattern"] = f"^(?:{self.regex})$"
        return schema


def pattern(regex: str, what: str) -> Pattern:
    compiled = re.compile(regex)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid {what}")
        return value

    return Pattern(check, regex)


# DNS-1123 label: valid as a label value, a URL path part and an HTML id.
Slug = Annotated[str, pattern(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", "slug (lowercase letters, digits and '-')")]
# Keys of choices and profile options: safe in form field names.
KEY_RE = re.compile(r"[A-Za-z0-9_.]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?")
Key = Annotated[str, pattern(KEY_RE.pattern, "key (letters, digits, '_', '.', '-')")]
NodeName = Annotated[str, pattern(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", "node name")]
ResourceName = Annotated[
    str,
    pattern(
        r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[a-z0-9]([-a-z0-9_.]*[a-z0-9])?", "extended resource name (vendor.com/kind)"
    ),
]
ModelName = Annotated[
    str, pattern(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", "accelerator model (a label value)")
]
LabelKey = Annotated[
    str, pattern(r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", "label key")
]
LabelValue = Annotated[str, pattern(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?", "label value")]
# A batch-system option: ``--name`` or ``--name=value`` with no space, quote or
# shell metacharacter, so that joining them with spaces is unambiguous.
BatchFlag = Annotated[
    str,
    pattern(
        r"--?[A-Za-z][A-Za-z0-9-]*(=[A-Za-z0-9_.:,/@%+=-]+)?", "flag (--name or --name=value, no spaces or quotes)"
    ),
]
BatchWord = Annotated[str, pattern(r"[A-Za-z0-9_.+-]{1,128}", "name (letters, digits, '_', '.', '+', '-')")]
GroupName = Annotated[str, Field(min_length=1, max_length=256)]


class CatalogModel(BaseModel):
    """Strict by default: an unknown key is a typo, and a typo stops the hub."""

    model_config = ConfigDict(extra="forbid", frozen=True)
