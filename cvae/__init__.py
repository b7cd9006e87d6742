"""Conditional VAE on three MedMNIST datasets."""
