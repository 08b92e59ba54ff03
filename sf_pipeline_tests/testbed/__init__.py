"""Tests of the testbed itself (sf_testbed/): the emulator speaks Bulk API 2.0 as Salesforce does."""
