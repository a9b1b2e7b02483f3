"""US stocks and crypto on Alpaca through alpaca-py (paper and live).

Modules: ``config`` (the YAML section), ``convert`` (pure conversions at the
boundary), ``rest`` (blocking REST in a thread pool), ``streams`` (supervised
websocket streams inside the loop), ``gateway`` (``AlpacaGateway``), ``factory``
(the registry's entry).  Nothing here is imported until such a gateway is built.
"""
