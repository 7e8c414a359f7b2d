"""Tests of controller/aws: the boto3 Batch adapter over HTTP (moto, the fault proxy)."""
