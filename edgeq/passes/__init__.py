"""Graph passes over fp32 ONNX: preparation (folding, simplification) and pruning."""
