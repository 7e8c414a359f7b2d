"""Benchmarks of batch-gitops against a local moto Batch endpoint.

Run everything with ``.venv/bin/python -m bench`` (see ``bench/README.md``).
Each scenario module measures one row of issue 6's table and returns plain
numbers; :mod:`bench.__main__` runs them side by side and prints the ratios.
``tests/bench`` runs the same code with tiny sizes so it cannot rot.
"""
