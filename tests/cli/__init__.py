"""Tests of controller/cli: commands as users run them (separate processes)."""
