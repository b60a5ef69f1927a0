"""Test data builders shared by the test modules (importable as ``helpers.*``)."""
