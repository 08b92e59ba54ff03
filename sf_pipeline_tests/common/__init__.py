"""Tests of sf_pipeline/common/."""
