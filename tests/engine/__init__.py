"""Tests of controller/engine: passes over time (schedule expansion, apply)."""
