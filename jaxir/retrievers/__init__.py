"""Composition layer: methods + index runtime + evaluation, used by the CLI and scripts."""
