"""Client keys, their limits and budgets, and who may use the admin surface."""
