"""The record of a loaded span (ibcbench_loads) and its planted incidents (ibcbench_incidents)."""

from __future__ import annotations

import json
from typing import Any

import psycopg

#: the manifest's fields of a planted incident, as ibcbench_incidents stores them (with its times)
INCIDENT_FIELDS = (
    "kind",
    "chain_id",
    "channel_id",
    "counterparty_chain_id",
    "counterparty_channel_id",
    "relayer",
)


def record_span(
    cur: psycopg.Cursor, manifest: dict[str, Any], elapsed_s: float, attempt_id: int | None = None
) -> None:
    """The span in ibcbench_loads, and its planted incidents (the manifest's list) in ibcbench_incidents."""
    cur.execute(
        "INSERT INTO ibcbench_loads (seed, scale, span_start, span_end, first_packet_id, last_packet_id, rows,"
        " checksums, params, elapsed_s, attempt_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " RETURNING id",
        (
            manifest["seed"],
            manifest["scale"],
            manifest["span_start"],
            manifest["span_end"],
            manifest["first_packet_id"],
            manifest["next_packet_id"] - 1,
            json.dumps(manifest["rows"]),
            json.dumps(manifest["checksums"], sort_keys=True),
            json.dumps(manifest["params"], default=str),
            elapsed_s,
            attempt_id,
        ),
    )
    load_id = cur.fetchone()[0]  # type: ignore[index]
    incidents = manifest.get("incidents") or []
    if incidents:
        cur.executemany(
            "INSERT INTO ibcbench_incidents (load_id, kind, chain_id, channel_id, counterparty_chain_id,"
            " counterparty_channel_id, relayer, started_at, ended_at, detail)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    load_id,
                    *(i.get(c) for c in INCIDENT_FIELDS),
                    i["start"],
                    i["end"],
                    json.dumps(
                        {k: v for k, v in i.items() if k not in (*INCIDENT_FIELDS, "start", "end")}
                    ),
                )
                for i in incidents
            ],
        )
