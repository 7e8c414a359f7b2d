"""Tests of controller/demo: the embedded moto endpoint."""
