"""`edgeq sweep`: many models × targets × recipes compiled on a process pool or a Ray cluster."""
