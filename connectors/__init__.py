"""Sink connectors: land the output topics in SQL tables, exactly once.

SQLite by default (`sqlite:///<DATA_DIR>/paystream.db`), PostgreSQL when
`PAYSTREAM_SINK_URL=postgresql://…`. Progress is stored beside the rows
(`sink_offsets`), so a replay after any crash rewrites nothing twice.
"""

from connectors.base import FlushResult, Rejected, Sink, SinkRecord
from connectors.database import DatabaseSink
from connectors.exceptions import SchemaNotReadyError, SinkBackpressureError, SinkConfigError, SinkError
from connectors.targets import backend_of, create_sink

__all__ = [
    "DatabaseSink",
    "FlushResult",
    "Rejected",
    "SchemaNotReadyError",
    "Sink",
    "SinkBackpressureError",
    "SinkConfigError",
    "SinkError",
    "SinkRecord",
    "backend_of",
    "create_sink",
]
