"""Taskmesh auth service."""
