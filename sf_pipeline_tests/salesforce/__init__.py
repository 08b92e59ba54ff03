"""Tests of sf_pipeline/salesforce/."""
