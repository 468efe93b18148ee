"""Client identity and what it may spend: keys, their limits and the counters behind them."""
