"""Builders for the bad-input corpus: every case is generated into a tmp dir at test time."""
