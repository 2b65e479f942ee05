"""Taskmesh activity service."""
