"""Pure: manifests -> typed requests, desired state, identities, policy and schedule
rules, the plan.

No AWS, git or ledger I/O (import-linter's layers contract keeps it so).
"""
