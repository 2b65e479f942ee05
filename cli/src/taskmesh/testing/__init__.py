"""Pytest support shared by every Taskmesh test suite: real backing servers and test tokens."""
