"""Renderers turn a Report into output; they never measure. Each exposes ``render(report, out)``."""
