"""A user's strategy package, outside ai-quant (the README's "Write your own strategy" example)."""
