"""The study over seeds and what it concludes: ablation variants, the weight search, spreads, claims and diagnosis."""
