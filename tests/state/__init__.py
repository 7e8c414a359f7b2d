"""Tests of controller/state: the ledger and what reads or writes it (retention)."""
