"""Interactive Brokers through ib_async (TWS or IB Gateway on the socket API).

Modules: ``config`` (the YAML section), ``contracts`` (instrument -> qualified
contract), ``convert`` (IB shapes <-> kernel events), ``errors`` (IB message codes),
``pacing`` (historical-data pacing), ``gateway`` (the ``Gateway``/``MarketData``
object), ``factory`` (the registry's entry).  ib_async is imported only by the
modules that talk to it.
"""
