"""The peer style: FastAPI + SQLAlchemy 2 async ORM sessions + Pydantic response models.

This is how the popular FastAPI templates serve a CRUD resource: a session per request from a
dependency, ORM objects, `response_model` validation from attributes.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ARRAY, DateTime, SmallInteger, String, Uuid, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bench.baselines.schema import OWNER


class Base(DeclarativeBase):
    """Declarative base."""


class Item(Base):
    """A row of `peer_items`."""

    __tablename__ = "peer_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[object] = mapped_column(Uuid)
    title: Mapped[str] = mapped_column(String)
    description: Mapped[str] = mapped_column(String, default="")
    priority: Mapped[int] = mapped_column(SmallInteger, default=3)
    status: Mapped[str] = mapped_column(String, default="todo")
    tags: Mapped[list[str]] = mapped_column(ARRAY(String), default=list)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    version: Mapped[int] = mapped_column(default=1)


class ItemIn(BaseModel):
    """Create body."""

    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    priority: int = Field(default=3, ge=1, le=5)


class ItemOut(BaseModel):
    """Response body."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    title: str
    description: str
    priority: int
    status: str
    tags: list[str]
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session per request."""
    async with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def create_app() -> FastAPI:
    """The peer-style app; the engine is built in the lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = os.environ["BENCH_DATABASE_URL"].replace("postgresql://", "postgresql+asyncpg://", 1)
        engine = create_async_engine(url, pool_size=4, max_overflow=0)
        app.state.sessions = async_sessionmaker(engine, expire_on_commit=False)
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/items/{item_id}", response_model=ItemOut)
    async def read_item(item_id: int, session: SessionDep) -> Item:
        item = await session.get(Item, item_id)
        if item is None or item.owner_id != OWNER:
            raise HTTPException(status_code=404, detail="Item not found")
        return item

    @app.post("/items", response_model=ItemOut, status_code=201)
    async def create_item(body: ItemIn, session: SessionDep) -> Item:
        item = Item(**body.model_dump(), owner_id=OWNER)
        session.add(item)
        await session.commit()
        await session.refresh(item)
        return item

    @app.get("/items", response_model=list[ItemOut])
    async def list_items(
        session: SessionDep, status: str | None = None, limit: Annotated[int, Query(le=100)] = 50
    ) -> list[Item]:
        query = select(Item).where(Item.owner_id == OWNER)
        if status is not None:
            query = query.where(Item.status == status)
        query = query.order_by(Item.created_at.desc(), Item.id.desc()).limit(limit)
        return list((await session.scalars(query)).all())

    @app.get("/search", response_model=list[ItemOut])
    async def search_items(
        session: SessionDep, q: str, limit: Annotated[int, Query(le=100)] = 50
    ) -> list[Item]:
        query = (
            select(Item)
            .where(Item.owner_id == OWNER)
            .where(text("search @@ websearch_to_tsquery('english', :q)").bindparams(q=q))
            .order_by(Item.created_at.desc(), Item.id.desc())
            .limit(limit)
        )
        return list((await session.scalars(query)).all())

    return app
