"""batch-gitops: reconcile a git repository of AWS Batch manifests into AWS Batch."""

__version__ = "0.1.0"
