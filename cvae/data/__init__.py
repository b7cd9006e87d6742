"""MedMNIST files in, tensors out: the real datasets (`loading`) and the labelled offline stand-in (`synthetic`)."""
