"""Per-sample quantities from logits, and the scores built on them."""
