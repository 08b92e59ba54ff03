"""Tests of sf_pipeline/deployment/."""
