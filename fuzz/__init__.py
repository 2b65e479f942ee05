"""Coverage-guided fuzz targets (atheris) for Taskmesh's parsers of untrusted input.

Each target module has `check(data: bytes) -> None`, which must raise nothing but the documented
refusal of its parser. Run them with `uv run python -m fuzz --seconds 60`.
"""
