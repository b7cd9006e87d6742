"""The book, its PDF and the submission archive, built from the executed chapters."""
