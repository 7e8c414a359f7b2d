"""The ledger: what the controller registered, submitted and did, behind a small
Protocol; rebuild from AWS tags, retention, a new leader's catch-up, the audit read model.
"""
