"""What a trained run is worth: metric maths, the domain evaluator, inference, one run's metrics, the cached evaluation."""
