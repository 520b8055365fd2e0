"""Measurement on compiled artifacts: fidelity, task evaluators, culprit layers, machine facts."""
