"""`python -m controller` is `batch-gitops`."""

from controller.cli.main import main

main()
