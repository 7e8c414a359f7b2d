"""docs/state.md's CloudFormation and Terraform snippets create the same DynamoDB table as
``batch-gitops ledger create-table``: the same key schema, attribute types, indexes and
projections (compared with ``controller.state.dynamodb_layout.table_definition``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2
import yaml

from controller.state.dynamodb_layout import table_definition

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "state.md").read_text()


def _block(language: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", DOC, flags=re.S)
    assert len(blocks) == 1, f"docs/state.md: expected one ```{language} block"
    return blocks[0]


def _normal(
    attributes: dict[str, str], key: list[tuple[str, str]], indexes: list[dict[str, Any]]
) -> dict[str, Any]:
    """The parts of a table definition that must agree, in one comparable shape."""
    return {
        "attributes": attributes,
        "key": key,
        "indexes": {
            index["name"]: (index["hash"], index["range"], index["projection"], index["include"])
            for index in indexes
        },
    }


def _aws_shape(table: dict[str, Any]) -> dict[str, Any]:
    """A CreateTable request (or CloudFormation's Properties: the same field names)."""
    return _normal(
        {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]},
        [(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]],
        [
            {
                "name": index["IndexName"],
                "hash": index["KeySchema"][0]["AttributeName"],
                "range": index["KeySchema"][1]["AttributeName"],
                "projection": index["Projection"]["ProjectionType"],
                "include": sorted(index["Projection"].get("NonKeyAttributes", [])),
            }
            for index in table["GlobalSecondaryIndexes"]
        ],
    )


def created_table() -> dict[str, Any]:
    return _aws_shape(table_definition("batch-gitops"))


def test_the_cloudformation_snippet_creates_the_same_table() -> None:
    """The AWS::DynamoDB::Table resource: on-demand, point-in-time recovery, and exactly
    the keys, attributes and indexes create-table makes."""
    (resource,) = yaml.safe_load(_block("yaml")).values()
    assert resource["Type"] == "AWS::DynamoDB::Table"
    table = resource["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert _aws_shape(table) == created_table()


def _unquote(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip('"')
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    return value


def test_the_terraform_snippet_creates_the_same_table() -> None:
    """The aws_dynamodb_table resource, parsed as HCL: the same table as create-table."""
    parsed = hcl2.loads(_block("hcl"))
    [resources] = parsed["resource"]
    [(kind, named)] = resources.items()
    assert _unquote(kind) == "aws_dynamodb_table"
    [table] = named.values()
    table = {
        k: _unquote(v) if not isinstance(v, list) or not v or not isinstance(v[0], dict) else v
        for k, v in table.items()
    }
    assert table["billing_mode"] == "PAY_PER_REQUEST"
    assert _unquote(table["point_in_time_recovery"][0]["enabled"]) in (True, "true")
    snippet = _normal(
        {_unquote(a["name"]): _unquote(a["type"]) for a in table["attribute"]},
        [(table["hash_key"], "HASH"), (table["range_key"], "RANGE")],
        [
            {
                "name": _unquote(index["name"]),
                "hash": _unquote(index["hash_key"]),
                "range": _unquote(index["range_key"]),
                "projection": _unquote(index["projection_type"]),
                "include": sorted(_unquote(index.get("non_key_attributes", []))),
            }
            for index in table["global_secondary_index"]
        ],
    )
    assert snippet == created_table()


def test_a_changed_layout_would_be_caught() -> None:
    """The comparison is not a rubber stamp: one index less differs."""
    changed = created_table()
    changed["indexes"].pop("by_revision")
    assert changed != created_table()
