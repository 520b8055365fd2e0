"""Backends turn a (quantized) ONNX model into a deployable artifact for a target's runtime."""
