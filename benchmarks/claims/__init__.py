"""Claim studies: the runs and ablations behind a figure or verdict in RESULTS.md and docs/results-log.md."""
