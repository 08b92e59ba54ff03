"""Tests of sf_pipeline/warehouse/."""
