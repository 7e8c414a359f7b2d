"""The source: reading the git repository (head, snapshot, blobs), signature checks,
the trusted policy ref, the manifest cache, and git notes. The only place that speaks git.
"""
