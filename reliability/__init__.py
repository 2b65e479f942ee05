"""Fault-injection and soak suites for Taskmesh (issue 10): `python -m reliability <suite>`."""
