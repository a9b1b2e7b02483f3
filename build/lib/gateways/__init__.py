"""Broker gateways behind one ``Gateway`` protocol; ``sim`` is the simulated exchange."""
