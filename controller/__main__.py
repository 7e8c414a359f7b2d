"""`python -m controller` is `batch-gitops`."""

from controller.cli import main

main()
