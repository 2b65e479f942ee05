"""Taskmesh benchmark harness: wrk load against the system and four same-run baselines."""
