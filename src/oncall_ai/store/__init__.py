from oncall_ai.store.base import Agg, Doc, EventRecord, Series, Store, open_store

__all__ = ["Agg", "Doc", "EventRecord", "Series", "Store", "open_store"]
