"""Tests of sf_pipeline/cli/."""
