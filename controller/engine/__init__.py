"""One reconcile pass: settle -> observe -> plan -> apply -> record, and schedule expansion."""
