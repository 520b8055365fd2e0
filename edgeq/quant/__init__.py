"""Quantization arithmetic and range calibration shared by the QDQ rewrite and calibration."""
