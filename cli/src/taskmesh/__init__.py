"""The taskmesh command: runs the whole system locally and drives its tests and benchmarks."""
