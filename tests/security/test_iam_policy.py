"""deploy/iam-policy.json covers every AWS operation the controller's code calls,
and nothing is granted broadly that AWS lets us scope.

The operations are found by reading the code (AST), not from a hand-kept list:
every ``<client attr>.<operation>(...)`` on an attribute assigned from
``boto3.client("svc")`` / ``session.client("svc")``, paginators and waiters
resolved to their operations through botocore's own models."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import botocore.session

ROOT = Path(__file__).resolve().parents[2]
POLICY = json.loads((ROOT / "deploy" / "iam-policy.json").read_text())
# The embedded demo drives its own moto server (compute environments, queues): never AWS.
NOT_AWS = {"demo/app.py", "demo/backend.py"}
# One-time setup, run by an operator with admin rights, never by the running controller.
SETUP_ONLY = {
    ("dynamodb", "CreateTable"),
    ("dynamodb", "DescribeTable"),
    ("dynamodb", "UpdateContinuousBackups"),
}
SETUP_FUNCTIONS = {"create_table"}
IAM_PREFIX = {"batch": "batch", "dynamodb": "dynamodb"}
# TransactWriteItems is no IAM action: IAM checks each part (Put -> PutItem, ...;
# ConditionCheck -> ConditionCheckItem). The parts the code builds are found below.
TRANSACTION_PARTS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}
LEDGER_TABLE = "arn:aws:dynamodb:*:*:table/batch-gitops"
_SESSION = botocore.session.get_session()


def transaction_parts_in_code() -> set[str]:
    """The IAM actions of every TransactWriteItems part the code builds: dict literals
    with a ``"Put"``/``"Update"``/``"Delete"``/``"ConditionCheck"`` key holding a request
    that names a ``TableName``."""
    found = set()
    for file in sorted((ROOT / "controller").rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text())):
            if not isinstance(node, ast.Dict):
                continue
            for key, value in zip(node.keys, node.values, strict=True):
                if (
                    isinstance(key, ast.Constant)
                    and key.value in TRANSACTION_PARTS
                    and not (isinstance(value, ast.Dict) and not _names_table(value))
                ):
                    found.add(TRANSACTION_PARTS[key.value])
    return found


def _names_table(request: ast.Dict) -> bool:
    return any(isinstance(k, ast.Constant) and k.value == "TableName" for k in request.keys)


def iam_actions(service: str, operation: str) -> set[str]:
    """The IAM actions one call needs."""
    if (service, operation) == ("dynamodb", "TransactWriteItems"):
        return transaction_parts_in_code()
    return {f"{IAM_PREFIX[service]}:{operation}"}


def _operations(service: str) -> dict[str, str]:
    model = _SESSION.get_service_model(service)
    return {botocore.xform_name(name): name for name in model.operation_names}


def _client_service(node: ast.AST) -> str | None:
    """'batch' for ``boto3.client("batch", ...)`` or ``x or session.client("batch")``."""
    for call in ast.walk(node):
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "client"
            and call.args
            and isinstance(call.args[0], ast.Constant)
            and isinstance(call.args[0].value, str)
        ):
            return call.args[0].value
    return None


def _self_attr(node: ast.AST) -> str | None:
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    ):
        return node.attr
    return None


def calls_in_code() -> Iterator[tuple[str, str, str, str]]:
    """(service, PascalCase operation, file:line, enclosing function) of every AWS call."""
    for file in sorted((ROOT / "controller").rglob("*.py")):
        if file.relative_to(ROOT / "controller").as_posix() in NOT_AWS:
            continue
        tree = ast.parse(file.read_text())
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            clients: dict[str, str] = {}
            for node in ast.walk(cls):
                if isinstance(node, ast.Assign):
                    service = _client_service(node.value)
                    for target in node.targets:
                        attr = _self_attr(target)
                        if service and attr:
                            clients[attr] = service
            if not clients:
                continue
            yield from _calls_in_class(file, cls, clients)


def _calls_in_class(
    file: Path, cls: ast.ClassDef, clients: dict[str, str]
) -> Iterator[tuple[str, str, str, str]]:
    methods = {f.name: f for f in cls.body if isinstance(f, ast.FunctionDef)}
    for function in methods.values():
        # Calls and references alike: the adapter passes ``self.client.submit_job``
        # to a wrapper instead of calling it in place.
        for node in ast.walk(function):
            if not isinstance(node, ast.Attribute):
                continue
            attr = _self_attr(node.value)
            if attr not in clients or node.attr in ("meta", "exceptions"):
                continue
            service = clients[attr]
            where = f"{file.name}:{node.lineno}"
            for name in _operation_names(node, function, methods, service):
                yield service, name, where, function.name


def _operation_names(
    node: ast.Attribute,
    function: ast.FunctionDef,
    methods: dict[str, ast.FunctionDef],
    service: str,
) -> list[str]:
    operations = _operations(service)
    method = node.attr
    if method in ("get_paginator", "get_waiter"):
        call = next(c for c in ast.walk(function) if isinstance(c, ast.Call) and c.func is node)
        arguments = _string_arguments(call.args[0], function, methods)
        if method == "get_paginator":
            return [operations[name] for name in arguments]
        waiters = _SESSION.get_waiter_model(service)
        result = []
        for name in arguments:
            pascal = "".join(part.capitalize() for part in name.split("_"))
            result.append(waiters.get_waiter(pascal).operation)
        return result
    assert method in operations, f"{method} is not a {service} operation"
    return [operations[method]]


def _string_arguments(
    node: ast.expr, function: ast.FunctionDef, methods: dict[str, ast.FunctionDef]
) -> list[str]:
    """A constant, or a parameter of ``function``: then every constant passed to it."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    assert isinstance(node, ast.Name), ast.dump(node)
    params = [a.arg for a in function.args.args]
    index = params.index(node.id)
    found = []
    for other in methods.values():
        for call in (n for n in ast.walk(other) if isinstance(n, ast.Call)):
            if isinstance(call.func, ast.Attribute) and call.func.attr == function.name:
                argument = call.args[index - 1]  # minus self
                assert isinstance(argument, ast.Constant), ast.dump(argument)
                found.append(str(argument.value))
    assert found, f"no callers of {function.name} pass {node.id}"
    return found


def _allowed_actions() -> list[dict[str, Any]]:
    statements = POLICY["Statement"]
    return [s for s in statements if s["Effect"] == "Allow"]


def _covers(action: str) -> list[dict[str, Any]]:
    matching = []
    for statement in _allowed_actions():
        actions = statement["Action"]
        actions = [actions] if isinstance(actions, str) else actions
        if any(fnmatchcase(action, pattern) for pattern in actions):
            matching.append(statement)
    return matching


def test_the_code_scan_finds_the_known_calls() -> None:
    """The AST scan sees what the adapter is known to call (so an empty scan cannot
    pass the coverage test vacuously)."""
    found = {(service, op) for service, op, _, _ in calls_in_code()}
    assert {
        ("batch", "SubmitJob"),
        ("batch", "RegisterJobDefinition"),
        ("batch", "CancelJob"),
        ("batch", "TerminateJob"),
        ("batch", "DescribeJobs"),
        ("batch", "ListJobs"),
        ("batch", "DescribeJobDefinitions"),
        ("batch", "DeregisterJobDefinition"),
        ("dynamodb", "GetItem"),
        ("dynamodb", "PutItem"),
        ("dynamodb", "UpdateItem"),
        ("dynamodb", "Query"),
        ("dynamodb", "TransactWriteItems"),
        ("dynamodb", "BatchWriteItem"),
        ("dynamodb", "CreateTable"),
    } <= found
    # A claim is an Update of the key, a Put of the run, a ConditionCheck of the lease.
    assert {
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:ConditionCheckItem",
    } <= transaction_parts_in_code()


def test_every_operation_the_code_calls_is_allowed() -> None:
    """Each AWS call in controller/ maps to an action the policy allows, except
    table creation, which only the one-time setup function performs."""
    missing = []
    for service, operation, where, function in calls_in_code():
        if (service, operation) in SETUP_ONLY:
            assert function in SETUP_FUNCTIONS, f"{operation} at {where} outside setup"
            continue
        for action in sorted(iam_actions(service, operation)):
            if not _covers(action):
                missing.append(f"{action} ({where})")
    assert missing == [], "add to deploy/iam-policy.json: " + ", ".join(missing)


def test_no_wildcards_where_aws_allows_scoping() -> None:
    """No '*' actions; writes never on Resource '*'; destructive actions are limited
    to resources tagged as ours; creates must carry our tag."""
    for statement in _allowed_actions():
        actions = statement["Action"]
        actions = [actions] if isinstance(actions, str) else actions
        assert all("*" not in a for a in actions), statement
        if statement["Resource"] == "*":
            assert all(a.split(":")[1].startswith(("Describe", "List")) for a in actions), statement
    for action in ("batch:CancelJob", "batch:TerminateJob", "batch:DeregisterJobDefinition"):
        (statement,) = _covers(action)
        condition = statement["Condition"]["StringEquals"]
        assert condition == {"aws:ResourceTag/batch-gitops/managed-by": "batch-gitops"}
    for action in ("batch:SubmitJob", "batch:RegisterJobDefinition", "batch:TagResource"):
        (statement,) = _covers(action)
        assert statement["Condition"]["Null"] == {"aws:RequestTag/batch-gitops/managed-by": "false"}


def test_no_action_is_granted_that_the_code_never_calls() -> None:
    """Least privilege in the other direction: every allowed action is used by the
    code, or is TagResource (tag-on-create authorization) / iam:PassRole (roles
    named in job definitions)."""
    used = {action for s, op, _, _ in calls_in_code() for action in iam_actions(s, op)}
    implied = {"batch:TagResource", "iam:PassRole"}
    for statement in _allowed_actions():
        actions = statement["Action"]
        for action in [actions] if isinstance(actions, str) else actions:
            assert action in used | implied, f"{action} is granted but never called"


def test_every_client_the_code_creates_is_scanned() -> None:
    """Every ``.client("svc")`` in controller/ is assigned to a ``self.<attr>`` the scan
    follows; a client kept elsewhere (a local, a module global) would escape the
    coverage test, so it fails here and the scan must learn the new shape."""
    for file in sorted((ROOT / "controller").rglob("*.py")):
        if file.relative_to(ROOT / "controller").as_posix() in NOT_AWS:
            continue
        tree = ast.parse(file.read_text())
        created = [
            node.lineno
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "client"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ]
        followed = [
            node.value.lineno
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign)
            and _client_service(node.value)
            and any(_self_attr(t) for t in node.targets)
        ]
        assert len(created) == len(followed), f"{file.name}: clients at lines {created}"


def test_dynamodb_is_granted_on_the_ledger_table_and_its_indexes_only() -> None:
    """Every DynamoDB action is scoped to the shared ledger's table (the lease lives in
    it) and its indexes (Query reads them); setup actions are not granted at all."""
    for statement in _allowed_actions():
        actions = statement["Action"]
        actions = [actions] if isinstance(actions, str) else actions
        if not any(a.startswith("dynamodb:") for a in actions):
            continue
        assert sorted(statement["Resource"]) == [LEDGER_TABLE, f"{LEDGER_TABLE}/index/*"]
        assert not {"dynamodb:CreateTable", "dynamodb:DeleteTable"} & set(actions)
    (query,) = _covers("dynamodb:Query")
    assert f"{LEDGER_TABLE}/index/*" in query["Resource"]
