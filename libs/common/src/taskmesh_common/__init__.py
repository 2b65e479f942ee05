"""Contracts shared by Taskmesh services; imported, never run."""
