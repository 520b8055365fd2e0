"""Intake: ONNX files and torch modules become a checked fp32 ONNX model."""
