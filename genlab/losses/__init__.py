"""Loss terms as small pure functions: reconstruction, KL, sparsity (adversarial ones plug in here too)."""
