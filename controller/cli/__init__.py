"""The ``batch-gitops`` command: every subcommand and its renderers."""
