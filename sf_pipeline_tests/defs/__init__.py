"""Tests of sf_pipeline/defs/."""
