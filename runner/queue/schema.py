"""The ECC queue schema, shared by both backends (column types differ only where the dialects do).

Tables: ``ecc_queue`` (ServiceNow's fields + lease bookkeeping), ``ecc_attachment``
(payloads over the cap), ``ecc_agent`` (agent registry), ``ecc_agent_issue`` (MID issues),
``midprobe_setting`` (the instance's settings), ``credential_affinity``, ``ecc_agent_upgrade``
(each MID upgrade, asked for or done),
and ``midprobe_schema`` (the schema version, checked on open).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

SCHEMA_VERSION: Final = 6

#: The ECC fields of ``ecc_queue``, in the order every SELECT returns them.
RECORD_COLUMNS: Final[tuple[str, ...]] = (
    "sys_id",
    "agent",
    "topic",
    "name",
    "source",
    "queue",
    "state",
    "payload",
    "response_to",
    "error_string",
    "priority",
    "sequence",
    "agent_correlator",
    "sys_created_on",
    "processed",
)
RECORD_SELECT: Final = ", ".join(RECORD_COLUMNS)

AGENT_COLUMNS: Final[tuple[str, ...]] = (
    "name",
    "status",
    "validated",
    "applications",
    "ip_ranges",
    "excluded_ip_ranges",
    "capabilities",
    "nmap_installed",
    "host",
    "pid",
    "started_at",
    "last_heartbeat",
    "public_key",
    "version",
    "pinned_version",
    "admin_state",
    "rekey_requested",
)
AGENT_SELECT: Final = ", ".join(AGENT_COLUMNS)

# The rule that makes a result unique per output and page: at most one non-claim input answers
# each page of an output (a result in one piece is page 1, the last).
ONE_RESULT_PREDICATE: Final = "queue = 'input' AND topic <> 'queue.processing' AND response_to IS NOT NULL"
#: The records with a ``response_to`` that ``ecc_queue_one_result`` leaves out (an output, or a claim,
#: given one by whoever enqueued it): the condition of the partial index ``ecc_queue_other_response_to``.
#: Together the two indexes find every record by ``response_to``, and a result (the common case)
#: is written to one of them only.
OTHER_RESPONSE_PREDICATE: Final = (
    "response_to IS NOT NULL AND (queue <> 'input' OR topic = 'queue.processing')"
)
#: Outputs addressed to every agent (``mid.server.*``, copied to each by ``SqlQueue._broadcast``): the
#: condition of the partial index ``ecc_queue_broadcast``, written as a literal so both planners use it.
BROADCAST_PREDICATE: Final = "queue = 'output' AND agent = 'mid.server.*'"
#: The columns ``ecc_queue_one_result`` is unique on (within ``ONE_RESULT_PREDICATE``).
ONE_RESULT_COLUMNS: Final = "response_to, result_page"
#: Queue bookkeeping written with every inserted record, after ``RECORD_COLUMNS``: the page of a
#: result (1 when it comes in one piece), whether it is the last page, and, on a copy of an
#: output addressed to ``mid.server.*``, the original's ``sys_id``.
INSERT_EXTRA_COLUMNS: Final[tuple[str, ...]] = ("result_page", "result_last", "copy_of")


@dataclass(frozen=True)
class Dialect:
    """What differs between SQLite and PostgreSQL: column types and the arrival order.

    ``arrival`` is the column that numbers ``ecc_queue`` rows in the order the database
    received them (claims take outputs of one priority in that order, whatever the
    enqueuers' clocks say): SQLite's own ``rowid``, a PostgreSQL identity column.
    """

    timestamp: str
    boolean: str
    arrival: str
    #: The column definition of ``arrival`` in ``ecc_queue`` ("" when the database has it built in).
    arrival_definition: str
    #: Statements bringing a schema of the given version up to the next one, beyond ``MIGRATIONS``.
    migrations: dict[int, tuple[str, ...]]


SQLITE_DIALECT: Final = Dialect(
    timestamp="TEXT",
    boolean="INTEGER",
    arrival="rowid",
    arrival_definition="",
    # Version 3: the claim index orders by rowid (implicit at the end of every SQLite index).
    migrations={2: ("DROP INDEX IF EXISTS ecc_queue_claim",)},
)
POSTGRES_DIALECT: Final = Dialect(
    timestamp="TIMESTAMPTZ",
    boolean="BOOLEAN",
    arrival="arrival",
    arrival_definition=",\n            arrival          BIGINT GENERATED ALWAYS AS IDENTITY",
    # Version 3: the arrival column, numbering the rows already there by their old order
    # (sequence, then sys_id), and the claim index on it.
    migrations={
        2: (
            "ALTER TABLE ecc_queue ADD COLUMN arrival BIGINT",
            "UPDATE ecc_queue SET arrival = ordered.position FROM (SELECT sys_id,"
            " row_number() OVER (ORDER BY sequence, sys_id) AS position FROM ecc_queue) AS ordered"
            " WHERE ecc_queue.sys_id = ordered.sys_id",
            "ALTER TABLE ecc_queue ALTER COLUMN arrival SET NOT NULL",
            "ALTER TABLE ecc_queue ALTER COLUMN arrival ADD GENERATED ALWAYS AS IDENTITY",
            "SELECT setval(pg_get_serial_sequence('ecc_queue', 'arrival'),"
            " (SELECT COALESCE(MAX(arrival), 0) + 1 FROM ecc_queue), false)",
            "DROP INDEX IF EXISTS ecc_queue_claim",
        )
    },
)


def schema_statements(dialect: Dialect) -> tuple[str, ...]:
    """``CREATE ... IF NOT EXISTS`` statements for every table and index, in order.

    On a database of an older version they run after its migrations (they add the
    indexes a migration dropped to change them).
    """
    ts, boolean = dialect.timestamp, dialect.boolean
    return (
        "CREATE TABLE IF NOT EXISTS midprobe_schema (version INTEGER NOT NULL)",
        f"""
        CREATE TABLE IF NOT EXISTS ecc_queue (
            sys_id           TEXT PRIMARY KEY CHECK (length(sys_id) = 32),
            agent            TEXT NOT NULL,
            topic            TEXT NOT NULL,
            name             TEXT NOT NULL DEFAULT '',
            source           TEXT NOT NULL DEFAULT '',
            queue            TEXT NOT NULL CHECK (queue IN ('output', 'input')),
            state            TEXT NOT NULL CHECK (state IN ('ready', 'processing', 'processed', 'error')),
            payload          TEXT NOT NULL DEFAULT '',
            response_to      TEXT,
            error_string     TEXT NOT NULL DEFAULT '',
            priority         INTEGER NOT NULL DEFAULT 2 CHECK (priority IN (0, 1, 2)),
            sequence         TEXT NOT NULL,
            agent_correlator TEXT NOT NULL DEFAULT '',
            sys_created_on   {ts} NOT NULL,
            processed        {ts},
            lease_owner      TEXT,
            lease_expires    {ts},
            lease_instance   TEXT,
            lease_epoch      TEXT,
            lease_deadline   DOUBLE PRECISION,
            result_page      INTEGER NOT NULL DEFAULT 1,
            result_last      INTEGER NOT NULL DEFAULT 1,
            copy_of          TEXT{dialect.arrival_definition}
        )
        """,
        # Claiming walks ready outputs by priority then arrival (SQLite: the rowid every index ends with).
        "CREATE INDEX IF NOT EXISTS ecc_queue_claim ON ecc_queue (queue, state, priority"
        f"{'' if dialect.arrival == 'rowid' else ', ' + dialect.arrival})",
        "CREATE INDEX IF NOT EXISTS ecc_queue_sequence ON ecc_queue (sequence, sys_id)",
        f"CREATE UNIQUE INDEX IF NOT EXISTS ecc_queue_one_result ON ecc_queue ({ONE_RESULT_COLUMNS}) "
        f"WHERE {ONE_RESULT_PREDICATE}",
        "CREATE INDEX IF NOT EXISTS ecc_queue_other_response_to ON ecc_queue (response_to)"
        f" WHERE {OTHER_RESPONSE_PREDICATE}",
        # The outputs addressed to mid.server.* waiting to be copied, which every claim looks for:
        # without it the look walks every ready output (the index holds only those few rows).
        f"CREATE INDEX IF NOT EXISTS ecc_queue_broadcast ON ecc_queue (state) WHERE {BROADCAST_PREDICATE}",
        # One copy per agent of each output addressed to mid.server.* (ServiceNow's "Probe - All MIDs").
        "CREATE UNIQUE INDEX IF NOT EXISTS ecc_queue_one_copy ON ecc_queue (copy_of, agent)"
        " WHERE copy_of IS NOT NULL",
        """
        CREATE TABLE IF NOT EXISTS ecc_attachment (
            sys_id     TEXT PRIMARY KEY REFERENCES ecc_queue (sys_id) ON DELETE CASCADE,
            payload    TEXT NOT NULL,
            size_bytes BIGINT NOT NULL
        )
        """,
        f"""
        CREATE TABLE IF NOT EXISTS ecc_agent (
            name               TEXT PRIMARY KEY,
            status             TEXT NOT NULL,
            validated          {boolean} NOT NULL,
            applications       TEXT NOT NULL,
            ip_ranges          TEXT NOT NULL,
            excluded_ip_ranges TEXT NOT NULL,
            capabilities       TEXT NOT NULL,
            nmap_installed     {boolean} NOT NULL,
            host               TEXT NOT NULL DEFAULT '',
            pid                INTEGER NOT NULL DEFAULT 0,
            started_at         {ts},
            last_heartbeat     {ts} NOT NULL,
            instance           TEXT NOT NULL DEFAULT '',
            public_key         TEXT NOT NULL DEFAULT '',
            version            TEXT NOT NULL DEFAULT '',
            pinned_version     TEXT NOT NULL DEFAULT '',
            admin_state        TEXT NOT NULL DEFAULT '',
            rekey_requested    INTEGER NOT NULL DEFAULT 0,
            sealed_credentials TEXT NOT NULL DEFAULT ''
        )
        """,
        f"""
        CREATE TABLE IF NOT EXISTS ecc_agent_issue (
            sys_id         TEXT PRIMARY KEY CHECK (length(sys_id) = 32),
            agent          TEXT NOT NULL,
            kind           TEXT NOT NULL,
            source         TEXT NOT NULL CHECK (source IN ('mid', 'instance')),
            message        TEXT NOT NULL,
            state          TEXT NOT NULL CHECK (state IN ('New', 'Acknowledged', 'Resolved')),
            count          INTEGER NOT NULL DEFAULT 1,
            sys_created_on {ts} NOT NULL,
            sys_updated_on {ts} NOT NULL
        )
        """,
        # One open issue per MID and kind: raising it again counts it.
        "CREATE UNIQUE INDEX IF NOT EXISTS ecc_agent_issue_open ON ecc_agent_issue (agent, kind)"
        " WHERE state <> 'Resolved'",
        "CREATE TABLE IF NOT EXISTS midprobe_setting (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
        f"""
        CREATE TABLE IF NOT EXISTS credential_affinity (
            address       TEXT NOT NULL,
            protocol      TEXT NOT NULL,
            credential_id TEXT NOT NULL,
            updated_at    {ts} NOT NULL,
            PRIMARY KEY (address, protocol)
        )
        """,
        f"""
        CREATE TABLE IF NOT EXISTS ecc_agent_upgrade (
            sys_id       TEXT PRIMARY KEY CHECK (length(sys_id) = 32),
            agent        TEXT NOT NULL,
            from_version TEXT NOT NULL DEFAULT '',
            to_version   TEXT NOT NULL,
            state        TEXT NOT NULL CHECK (state IN ('Requested', 'Upgrading', 'Succeeded', 'Failed')),
            reason       TEXT NOT NULL DEFAULT '',
            started      {ts} NOT NULL,
            ended        {ts}
        )
        """,
        "CREATE INDEX IF NOT EXISTS ecc_agent_upgrade_agent ON ecc_agent_upgrade (agent, started)",
    )


#: Statements that bring a schema of the given version up to the next one (both dialects).
#: Version 2 adds the lease clock (``lease_epoch``/``lease_deadline``: a monotonic or database
#: clock, never the agent's wall clock), the process holding each lease (``lease_instance``)
#: and the process holding each agent name (``ecc_agent.instance``). Version 3 orders claims
#: by arrival in the database (``Dialect.migrations``), no longer by the enqueuer's ``sequence``.
#: Version 4 adds multi-page results (``result_page``, ``result_last``; the one-result index
#: becomes unique per output and page), the link of a ``mid.server.*`` copy to its original
#: (``copy_of``), and the MID lifecycle: each agent's public key, version, pinned version, the
#: operator's admin state (paused, draining), a requested rekey and its sealed credentials; the
#: tables ``ecc_agent_issue`` (MID issues, ServiceNow's table of that name) and
#: ``midprobe_setting`` (the accepted MID major version, auto-validation) are made by
#: ``schema_statements``. Agents registered before keep their validated flag. Version 5 adds the
#: upgrade history, ``ecc_agent_upgrade`` (made by ``schema_statements``; nothing else changes).
#: Version 6 drops the index of every record by ``response_to``: results are found by
#: ``ecc_queue_one_result``, the rare other records by ``ecc_queue_other_response_to`` (made by
#: ``schema_statements``), so storing a result updates one index by ``response_to``, not two.
MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {
    1: (
        "ALTER TABLE ecc_queue ADD COLUMN lease_instance TEXT",
        "ALTER TABLE ecc_queue ADD COLUMN lease_epoch TEXT",
        "ALTER TABLE ecc_queue ADD COLUMN lease_deadline DOUBLE PRECISION",
        "ALTER TABLE ecc_agent ADD COLUMN instance TEXT NOT NULL DEFAULT ''",
    ),
    2: (),
    3: (
        "DROP INDEX IF EXISTS ecc_queue_one_result",
        "ALTER TABLE ecc_queue ADD COLUMN result_page INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE ecc_queue ADD COLUMN result_last INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE ecc_queue ADD COLUMN copy_of TEXT",
        "ALTER TABLE ecc_agent ADD COLUMN public_key TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE ecc_agent ADD COLUMN version TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE ecc_agent ADD COLUMN pinned_version TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE ecc_agent ADD COLUMN admin_state TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE ecc_agent ADD COLUMN rekey_requested INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE ecc_agent ADD COLUMN sealed_credentials TEXT NOT NULL DEFAULT ''",
    ),
    4: (),
    5: ("DROP INDEX IF EXISTS ecc_queue_response_to",),
}


def migrations(dialect: Dialect) -> dict[int, tuple[str, ...]]:
    """Every version's upgrade statements for ``dialect``: the shared ones, then the dialect's own."""
    return {
        version: (*MIGRATIONS.get(version, ()), *dialect.migrations.get(version, ()))
        for version in sorted({*MIGRATIONS, *dialect.migrations})
    }


__all__ = [
    "AGENT_COLUMNS",
    "AGENT_SELECT",
    "BROADCAST_PREDICATE",
    "INSERT_EXTRA_COLUMNS",
    "MIGRATIONS",
    "ONE_RESULT_COLUMNS",
    "ONE_RESULT_PREDICATE",
    "OTHER_RESPONSE_PREDICATE",
    "POSTGRES_DIALECT",
    "RECORD_COLUMNS",
    "RECORD_SELECT",
    "SCHEMA_VERSION",
    "SQLITE_DIALECT",
    "Dialect",
    "migrations",
    "schema_statements",
]
