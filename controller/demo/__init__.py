"""``batch-gitops demo``: the whole loop on an embedded moto Batch endpoint."""
