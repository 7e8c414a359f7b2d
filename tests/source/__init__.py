"""Tests of controller/source: reading the repository (tree listing, blob reads, cache)."""
