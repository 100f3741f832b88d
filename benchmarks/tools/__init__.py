"""Reproduction and documentation tools: rerun RESULTS.md's quick rows, regenerate the TPU plan
table, count config duplication, probe the command line for silent wrong answers."""
