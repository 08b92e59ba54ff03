"""Tests of sf_pipeline/datapath/."""
