"""Tests of controller/model: manifests, desired state, the plan, schedule rules (pure)."""
