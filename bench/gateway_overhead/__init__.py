"""The gateway overhead benchmark's parts; bench/overhead.py is the driver that runs them."""
