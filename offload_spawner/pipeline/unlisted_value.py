"""An unlisted choice's free text put into the admin's ``{value}`` template.

Apart from :mod:`offload_spawner.pipeline.plan` (which applies it) so that the
override checks (:mod:`offload_spawner.hub.config_checks`) can try a template
with the one function the plan uses.
"""

from __future__ import annotations

import string
from typing import Any


def fill_value(template: Any, value: str) -> Any:
    """Put unlisted free text into an admin's ``{value}`` template.

    Unlike KubeSpawner's ``str.format`` expansion, the user's text is inserted
    verbatim and never parsed (selection already refuses braces in it, since
    KubeSpawner expands some traits again with ``str.format``).
    """
    if isinstance(template, str):
        # Same result as KubeSpawner's template.format(value=...) for valid
        # templates ("{{" -> "{"), but the value itself is never parsed.
        out = []
        for literal, name, _spec, _conversion in string.Formatter().parse(template):
            out.append(literal)
            if name == "value":
                # A format spec (e.g. "{value:.20}") applies to the text as
                # str.format would; the text itself is still never parsed.
                out.append(format(value, _spec) if _spec else value)
            elif name is not None:
                out.append("{" + name + "}")
        return "".join(out)
    if isinstance(template, dict):
        # KubeSpawner's recursive_format fills keys too.
        return {fill_value(k, value): fill_value(v, value) for k, v in template.items()}
    if isinstance(template, list):
        return [fill_value(v, value) for v in template]
    return template


__all__ = ["fill_value"]
