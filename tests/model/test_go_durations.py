"""Durations are read the way Go's time.ParseDuration reads them (``1m30s``, ``1h30m``),
as Flux and Argo CD users write them, in every setting, flag and environment variable
that takes a duration."""

from __future__ import annotations

import pytest

from controller.cli.retention import parse_age
from controller.settings import Settings, parse_duration

DURATION_FIELDS = [
    "interval",
    "fetch_timeout",
    "ready_after",
    "schedule_grace",
    "max_pass_seconds",
    "progress_interval",
    "settle_grace",
    "lease_seconds",
]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1m30s", 90.0),
        ("1h30m", 5400.0),
        ("2h45m30s", 9930.0),
        ("1.5h", 5400.0),
        ("300ms", 0.3),
        ("1s500ms", 1.5),
        ("90", 90.0),
        ("30 s", 30.0),
        ("1d2h", 93600.0),
    ],
)
def test_go_style_compounds_are_summed(text: str, seconds: float) -> None:
    """Each unit's amount is added up: 1m30s is 90 seconds, 1h30m is 5400."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1m30", "m30s", "-5s", "1x", "1h-30m", "forever"])
def test_malformed_durations_are_refused_with_the_value(text: str) -> None:
    """A unitless tail, a sign, an unknown unit: ValueError quoting the value."""
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("name", DURATION_FIELDS)
def test_every_duration_setting_takes_a_compound(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BATCH_GITOPS_<SETTING>=1m30s sets 90 seconds for every duration setting."""
    monkeypatch.setenv(f"BATCH_GITOPS_{name.upper()}", "1m30s")
    assert getattr(Settings(), name) == 90.0


def test_ledger_prune_age_takes_days_and_compounds() -> None:
    """`ledger prune --older-than` takes 90d, 7d12h and 36h30m."""
    assert parse_age("90d") == 90 * 86400
    assert parse_age("7d12h") == 7.5 * 86400
    assert parse_age("36h30m") == 36.5 * 3600
