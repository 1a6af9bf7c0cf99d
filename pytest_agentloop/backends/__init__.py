"""One module per runtime, all behind the protocol in `base.py`."""
