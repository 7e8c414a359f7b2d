"""Every value constraint a manifest field has, once: for runtime validation and the schema.

A :class:`Rule` is one constraint written the way JSON Schema writes it (its
``keyword`` and ``value``), with the check that enforces it at run time. Both
validators read the rules from here: :func:`controller.model.manifests.validate_request`
calls :meth:`Rule.violation`, :mod:`controller.model.schema` emits
:meth:`Rule.schema`. They cannot drift, because there is nothing to copy.

Where the rules come from:

* **botocore's Batch model** (:func:`shape_rules`): ``min``/``max`` (string
  length, list items, map entries, numeric range by shape type), ``pattern`` and
  ``enum``. An enum member whose documentation says its values "aren't case
  sensitive" (today ``EvaluateOnExit.action``: AWS accepts ``retry``) is
  matched case-insensitively; the sentence is read from the model, not listed
  here, so a newly documented one is picked up.
* **AWS's documentation of a member** (:data:`DOCUMENTED`): limits AWS states
  in the member's own documentation but the model does not encode (job and
  definition names, retry attempts, timeout minimum, ...). Each carries the
  sentence it comes from; a test checks the sentence is still in botocore.
* **the controller** (:data:`CONTROLLER`): the reserved ``batch-gitops/`` tag
  prefix and room for the controller's own tags.

Pure: botocore shapes in, rules out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import regex
from botocore.model import Shape

# Tags the controller adds to each resource; AWS allows 50 in all.
TAG_PREFIX = "batch-gitops/"
RESERVED_TAG_COUNT = 6
MAX_TAGS = 50
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"

_NUMERIC = ("integer", "long", "float", "double")
# How botocore's min/max read for each shape type, as JSON Schema keywords.
_BOUNDS = {
    "string": ("minLength", "maxLength"),
    "list": ("minItems", "maxItems"),
    "map": ("minProperties", "maxProperties"),
    **{kind: ("minimum", "maximum") for kind in _NUMERIC},
}
_NOUN = {
    "minLength": ("at least", "characters"),
    "maxLength": ("at most", "characters"),
    "minItems": ("at least", "items"),
    "maxItems": ("at most", "items"),
    "minProperties": ("at least", "entries"),
    "maxProperties": ("at most", "entries"),
}
# "The values aren't case sensitive." (EvaluateOnExit.action) and its variants.
_CASE_INSENSITIVE = re.compile(
    r"(aren't|are not|isn't|is not|not) case[- ]sensitive|case[- ]insensitive", re.IGNORECASE
)
_SHOWN = 60


def shown(value: Any) -> str:
    """A value for a message: quoted, and cut short when long."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 4] + "...'"


def any_case_pattern(values: list[str]) -> str:
    """A JSON Schema (ECMA 262) pattern matching any of ``values`` in any case."""

    def letters(word: str) -> str:
        return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in word)

    return "(" + "|".join(letters(v) for v in values) + ")"


@dataclass(frozen=True)
class Rule:
    """One constraint: a JSON Schema keyword, its value, and where it comes from."""

    keyword: str
    value: Any
    source: str = "botocore"
    # A message that says more than the generic one (why the controller needs it).
    message: str = ""

    def violation(self, value: Any) -> str | None:
        """Why ``value`` breaks the rule (a message showing the value), or None.

        Only called on a value of the right JSON type: the walker checks types first.
        """
        broken = self._broken(value)
        if not broken:
            return None
        return self.message.format(value=shown(value), count=_size(value)) or broken

    def _broken(self, value: Any) -> str:
        keyword, limit = self.keyword, self.value
        if keyword in _NOUN:
            size = _size(value)
            if (keyword.startswith("min") and size < limit) or (
                keyword.startswith("max") and size > limit
            ):
                bound, unit = _NOUN[keyword]
                return f"has {size} {unit}; must have {bound} {limit}" + (
                    f": {shown(value)}" if isinstance(value, str) else ""
                )
            return ""
        if keyword == "minimum" and value < limit:
            return f"{value!r} is less than the minimum {limit}"
        if keyword == "maximum" and value > limit:
            return f"{value!r} is more than the maximum {limit}"
        if keyword == "pattern" and not _pattern(limit).search(value):
            return f"{shown(value)} does not match the pattern {limit}"
        if keyword == "enum" and value not in limit:
            return f"{shown(value)} is not one of {', '.join(limit)}"
        if keyword == "enumIgnoringCase" and value.upper() not in {v.upper() for v in limit}:
            return f"{shown(value)} is not one of {', '.join(limit)} (in any case)"
        if keyword == "notPrefix" and value.startswith(limit):
            return f"{shown(value)}: the {limit} prefix is reserved for the controller"
        return ""

    def schema(self) -> dict[str, Any]:
        """The same rule as a JSON Schema (draft-07) fragment."""
        if self.keyword == "enumIgnoringCase":
            # Completion from the enum; any case from the pattern.
            return {
                "anyOf": [
                    {"enum": list(self.value)},
                    {"pattern": "^" + any_case_pattern(self.value) + "$"},
                ]
            }
        if self.keyword == "notPrefix":
            return {"not": {"pattern": "^" + _ecma_escape(self.value)}}
        return {self.keyword: self.value}


@cache
def _pattern(text: str) -> Any:
    """AWS model patterns are Java/Smithy regexes (``\\p{L}`` and friends): the ``regex``
    module reads those; Python's ``re`` does not. Searched, not anchored, as Smithy says."""
    return regex.compile(text)


def _ecma_escape(text: str) -> str:
    """Escape regex metacharacters the way both Python and ECMA 262 read them
    (``re.escape`` also escapes ``-``, which a unicode-mode JavaScript regex refuses)."""
    return re.sub(r"([.^$*+?()\[\]{}|\\/])", r"\\\1", text)


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | list | dict) else 0


@dataclass(frozen=True)
class Documented:
    """Rules AWS states in a member's documentation; ``evidence`` is that sentence."""

    owner: str
    member: str
    rules: tuple[Rule, ...]
    evidence: str = ""


_NAME_MESSAGE = (
    "{value} is not a valid name: 1-128 letters, digits, hyphens or underscores, "
    "starting with a letter or digit"
)
DOCUMENTED: tuple[Documented, ...] = (
    Documented(
        "SubmitJobRequest",
        "jobName",
        (Rule("pattern", NAME_PATTERN, "documented", _NAME_MESSAGE),),
        "It can be up to 128 letters long. The first character must be alphanumeric",
    ),
    Documented(
        "RegisterJobDefinitionRequest",
        "jobDefinitionName",
        (Rule("pattern", NAME_PATTERN, "documented", _NAME_MESSAGE),),
        "It can be up to 128 letters long.",
    ),
    Documented(
        "RetryStrategy",
        "attempts",
        (Rule("minimum", 1, "documented"), Rule("maximum", 10, "documented")),
        "You can specify between 1 and 10 attempts.",
    ),
    Documented(
        "RetryStrategy",
        "evaluateOnExit",
        (Rule("maxItems", 5, "documented"),),
        "Array of up to 5 objects",
    ),
    Documented(
        "JobTimeout",
        "attemptDurationSeconds",
        (Rule("minimum", 60, "documented"),),
        "The minimum value for the timeout is 60 seconds.",
    ),
    Documented(
        "SubmitJobRequest",
        "schedulingPriorityOverride",
        (Rule("minimum", 0, "documented"), Rule("maximum", 9999, "documented")),
        "The minimum supported value is 0 and the maximum supported value is 9999.",
    ),
    Documented(
        "RegisterJobDefinitionRequest",
        "schedulingPriority",
        (Rule("minimum", 0, "documented"), Rule("maximum", 9999, "documented")),
        "The minimum supported value is 0 and the maximum supported value is 9999.",
    ),
    Documented(
        "SubmitJobRequest",
        "dependsOn",
        (Rule("maxItems", 20, "documented"),),
        "A job can depend upon a maximum of 20 jobs.",
    ),
    *(
        Documented(
            "EvaluateOnExit",
            member,
            (Rule("maxLength", 512, "documented"),),
            "up to 512 characters",
        )
        for member in ("onExitCode", "onReason", "onStatusReason")
    ),
    # The Batch user guide ("Array jobs"): an array job has 2 to 10,000 children.
    # botocore says only "The size of the array job.", so there is no evidence to check.
    Documented(
        "ArrayProperties",
        "size",
        (
            Rule("minimum", 2, "documented", "{value} children: an array job has 2 to 10000"),
            Rule("maximum", 10_000, "documented", "{value} children: an array job has 2 to 10000"),
        ),
    ),
)

_ROOM = MAX_TAGS - RESERVED_TAG_COUNT
_TAG_KEY_RULES = (Rule("notPrefix", TAG_PREFIX, "controller"),)
_TAG_RULES = (
    Rule(
        "maxProperties",
        _ROOM,
        "controller",
        f"{{count}} tags; at most {_ROOM} leave room for the controller's "
        f"{RESERVED_TAG_COUNT} (AWS allows {MAX_TAGS})",
    ),
)
# (structure, member) -> (rules on the value, rules on each key of a map value)
CONTROLLER: dict[tuple[str, str], tuple[tuple[Rule, ...], tuple[Rule, ...]]] = {
    ("SubmitJobRequest", "tags"): (_TAG_RULES, _TAG_KEY_RULES),
    ("RegisterJobDefinitionRequest", "tags"): (_TAG_RULES, _TAG_KEY_RULES),
}


def shape_rules(shape: Shape) -> list[Rule]:
    """The rules botocore's model puts on a shape itself (any member using it)."""
    rules: list[Rule] = []
    bounds = _BOUNDS.get(shape.type_name)
    if bounds is not None:
        for key, keyword in zip(("min", "max"), bounds, strict=True):
            if key in shape.metadata:
                rules.append(Rule(keyword, shape.metadata[key]))
    if shape.type_name == "string":
        if "pattern" in shape.metadata:
            rules.append(Rule("pattern", shape.metadata["pattern"]))
        enum = list(getattr(shape, "enum", None) or [])
        if enum:
            case_free = bool(_CASE_INSENSITIVE.search(shape.documentation or ""))
            rules.append(Rule("enumIgnoringCase" if case_free else "enum", enum))
    return rules


@cache
def _documented() -> dict[tuple[str, str], tuple[Rule, ...]]:
    table: dict[tuple[str, str], tuple[Rule, ...]] = {}
    for entry in DOCUMENTED:
        key = (entry.owner, entry.member)
        table[key] = table.get(key, ()) + entry.rules
    return table


@dataclass(frozen=True)
class MemberRules:
    """All rules of one member in one structure: the shape's, AWS's documented, ours."""

    rules: tuple[Rule, ...] = ()
    # Rules on the keys of a map member (botocore's key shape).
    key_rules: tuple[Rule, ...] = field(default_factory=tuple)


@cache  # shapes live as long as the service model; a manifest walk asks per value
def member_rules(owner: str | None, member: str | None, shape: Shape) -> MemberRules:
    """Every rule for ``shape`` used as member ``member`` of structure ``owner``.

    ``owner``/``member`` are None for list items, map values and the request itself.
    """
    rules = shape_rules(shape)
    key_rules: list[Rule] = []
    if shape.type_name == "map":
        key_rules += shape_rules(shape.key)
    if owner is not None and member is not None:
        rules += _documented().get((owner, member), ())
        ours, ours_on_keys = CONTROLLER.get((owner, member), ((), ()))
        if (owner, member) in CONTROLLER:
            # The controller adds its own tags to every request, so AWS never receives an
            # empty map: ``tags: {}`` (as describe-* output echoes it) is fine in a file.
            rules = [rule for rule in rules if rule.keyword != "minProperties"]
        rules += ours
        key_rules += ours_on_keys
    return MemberRules(tuple(rules), tuple(key_rules))
