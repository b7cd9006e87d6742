"""Training runs: the loop, its cached run folders, several runs at once, and the throughput benchmark."""
