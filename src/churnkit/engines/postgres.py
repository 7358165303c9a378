"""Tables in PostgreSQL, read into the DuckDB engine as Arrow.

``data.<table>.url`` names the database and ``table`` or ``query`` what to read; the
rows come over the PostgreSQL wire protocol through the ADBC driver (binary COPY, no
row-by-row Python) and DuckDB then checks them and builds features from them as from a
file, so every rule and feature runs on the engine the tests cover. Running the Ibis
feature query inside PostgreSQL itself (no copy) was not built or measured; the table
is held in memory as Arrow while DuckDB reads it.

Credentials never sit in the config: the password comes from ``$PGPASSWORD`` (libpq's
own variable) or from ``${VAR}`` written in the URL and set in the environment; the URL
as written (with the placeholder) is what reaches logs and MLflow. Connecting and the
query are bounded by ``timeout_seconds``, so no nightly step waits forever.

The driver is optional: ``pip install "churnkit[postgres]"``.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from typing import TYPE_CHECKING

from churnkit.errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from churnkit.config import TableSource

__all__ = ["read_postgres"]

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def read_postgres(source: TableSource, name: str) -> pa.Table:
    """The rows of ``source.table`` (or of ``source.query``) as an Arrow table.

    Raises
    ------
    ConfigError
        When the driver is missing or a ``${VAR}`` of the URL is not set.
    DataError
        When the database cannot be reached in time, or the table or query fails.
    """
    try:
        import adbc_driver_postgresql.dbapi as dbapi
    except ImportError:
        raise ConfigError(
            f'`data.{name}.url` needs the PostgreSQL driver: pip install "churnkit[postgres]"'
        ) from None
    uri = _with_timeout(_expanded(source.url or "", name), source.timeout_seconds)
    query = source.query or f"SELECT * FROM {_qualified(source.table or '')}"
    try:
        with dbapi.connect(uri) as connection, connection.cursor() as cursor:
            cursor.execute(f"SET statement_timeout = {int(source.timeout_seconds * 1000)}")
            cursor.execute(query)
            return cursor.fetch_arrow_table()
    except dbapi.Error as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(
            f"cannot read {name} from PostgreSQL ({source.url}): {first}; check "
            f"`data.{name}.url`, `table`/`query` and that the server is up"
        ) from None


def _expanded(url: str, name: str) -> str:
    def value(match: re.Match[str]) -> str:
        variable = match.group(1)
        if variable not in os.environ:
            raise ConfigError(f"`data.{name}.url` uses ${{{variable}}}, which is not set")
        return urllib.parse.quote(os.environ[variable], safe="")

    return _PLACEHOLDER.sub(value, url)


def _with_timeout(uri: str, seconds: int) -> str:
    separator = "&" if "?" in uri else "?"
    return f"{uri}{separator}connect_timeout={min(seconds, 60)}"


def _qualified(table: str) -> str:
    """``schema.table`` or ``table``, each part quoted."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in table.split("."))
