"""The long-running process: the daemon (APScheduler), its HTTP endpoints, the
webhook receiver and the container health check.
"""
