"""Tests of controller/service: the daemon's HTTP endpoints and health."""
