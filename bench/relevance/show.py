"""Print tuning records by id, for a rule author looking at a miss or a false alarm.

Refuses held-out ids: the held-out part is for measuring, never for tuning (CORPUS.md).

    .venv/bin/python -m bench.relevance.show en-us-017 fritespt-008
"""

from __future__ import annotations

import json
import sys

from bench.relevance.corpus import load_corpus


def main(argv: list[str]) -> int:
    records = {r.id: r for r in load_corpus()}
    status = 0
    for rid in argv:
        record = records.get(rid)
        if record is None:
            print(f"{rid}: no such record", file=sys.stderr)
            status = 2
        elif record.split == "heldout":
            print(f"{rid}: held out; not shown (tune on the tuning part only)", file=sys.stderr)
            status = 2
        else:
            shown = {k: getattr(record, k) for k in ("id", "title", "lang", "kind", "feed", "relevant", "authority")}
            shown |= {"action": record.action, "link": record.link, "date": record.date.date().isoformat()}
            print(json.dumps(shown, ensure_ascii=False))
            print(f"  {record.text}\n")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
