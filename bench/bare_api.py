"""The baseline of bench/api.py: a bare FastAPI endpoint that validates a small body and
inserts one row, served by uvicorn like `dialq api`, with the same engine settings, on the
same database. dialq's POST /v1/calls does that plus its key check, rate limit, validation,
idempotency, the broker probe and the publish: the ratio of the two rates is their cost.

    BENCH_DATABASE_URL=... python -m uvicorn --app-dir bench bare_api:app --port N
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import Column, DateTime, MetaData, String, Table, create_engine, insert

URL = os.environ["BENCH_DATABASE_URL"]
# dialq's engine settings (dialq/store/db.py) for PostgreSQL; SQLite waits like dialq's.
engine = (
    create_engine(URL, connect_args={"timeout": 30})
    if URL.startswith("sqlite")
    else create_engine(URL, pool_pre_ping=True, pool_size=5, max_overflow=10)
)
rows = Table(
    "bench_bare_rows",
    MetaData(),
    Column("id", String(36), primary_key=True),
    Column("phone_number", String(32)),
    Column("created_at", DateTime(timezone=True)),
)
rows.metadata.create_all(engine)
app = FastAPI()


class Body(BaseModel):
    phone_number: str


@app.post("/bare", status_code=201)
def bare(body: Body) -> dict[str, str]:
    row_id = str(uuid.uuid4())
    with engine.begin() as connection:
        connection.execute(
            insert(rows).values(
                id=row_id, phone_number=body.phone_number, created_at=datetime.now(UTC)
            )
        )
    return {"id": row_id}
