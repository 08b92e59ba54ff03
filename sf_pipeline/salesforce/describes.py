"""A run's describes asked ahead: the objects a batch run will load are described up to 25 in one Composite
request (one API call, one round trip) instead of one request each, so that most loads start without a
describe of their own.

Bounded: at most 24 describes are held, each without what the pipeline never reads (picklist values, child
relationships, record types: the bulk of a big object's describe), and each is handed out once. An object
asked out of the expected order is described with the next waiting ones while there is room, alone otherwise;
a subrequest Salesforce refuses leaves its object to be described alone, so its error is the plain describe's.
A describe held while earlier objects load is as old as the run's progress (a field added meanwhile is loaded
from the object's next load on, and reported then)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .client import SalesforceClient

BATCH = 25  # subrequests of one Composite request
UNREAD = ("childRelationships", "recordTypeInfos", "supportedScopes", "namedLayoutInfos")  # describe keys left out


def lean(describe: dict) -> dict:
    """A describe without the parts the pipeline never reads."""
    fields = [{k: v for k, v in f.items() if k != "picklistValues"} for f in describe.get("fields", [])]
    return {**{k: v for k, v in describe.items() if k not in UNREAD}, "fields": fields}


class DescribesAhead:
    """The objects a run will load, described in batches as the first of each batch is asked for."""

    def __init__(self, names: Sequence[str]) -> None:
        self._waiting = list(dict.fromkeys(names))  # not asked yet, in the order the run is expected to load them
        self._held: dict[str, dict] = {}
        self._lock = threading.Lock()

    def take(self, client: SalesforceClient, sobject: str) -> dict | None:
        """``sobject``'s describe, asked with the next waiting objects' when it was not asked yet; None when it is
        not one of the run's objects, or Salesforce refused it in the batch (the caller describes it alone)."""
        with self._lock:
            if (held := self._held.pop(sobject, None)) is not None:
                return held
            if sobject not in self._waiting:
                return None
            room = BATCH - 1 - len(self._held)
            batch = [sobject, *[n for n in self._waiting if n != sobject][: max(room, 0)]]
            self._waiting = [n for n in self._waiting if n not in batch]
        urls = [client.data_path(f"sobjects/{name}/describe") for name in batch]
        answers = client.composite(urls, sobject=sobject)
        found: dict | None = None
        with self._lock:
            for name, answer in zip(batch, answers, strict=True):
                if answer["httpStatusCode"] >= 400:
                    continue
                if name == sobject:
                    found = answer["body"]
                else:
                    self._held[name] = lean(answer["body"])
        return found
