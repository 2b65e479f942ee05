"""Taskmesh tasks service."""
