"""AWS Batch job statuses and how the controller groups them (pure constants)."""

QUEUED_STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE")  # CancelJob works here
RUNNING_STATUSES = ("STARTING", "RUNNING")  # only TerminateJob stops these
ACTIVE_STATUSES = QUEUED_STATUSES + RUNNING_STATUSES
TERMINAL_STATUSES = ("SUCCEEDED", "FAILED")
ALL_STATUSES = ACTIVE_STATUSES + TERMINAL_STATUSES
# Not an AWS status: AWS no longer knows the job (a finished job past its retention).
FORGOTTEN = "FORGOTTEN"
# A run that can never change again.
FINISHED_STATUSES = (*TERMINAL_STATUSES, FORGOTTEN)
