"""Measurement on compiled artifacts: runners, fidelity, latency, task evaluators, machine facts."""
