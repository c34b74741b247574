"""one brief per article: sightings, identity columns, withdrawn briefs, deferred sources

Revision ID: 0002
Revises: 0001

Before this revision each source stored its own copy of an article. This one adds the
identity columns (normalised URL, WordPress site and post id), a `sightings` row for
every stored copy, and merges the copies of one article into the oldest: it keeps that
brief's Atom id and first-seen time, takes the richest copy's content, and every mailing
that carried any copy now names the kept brief, so no subscriber is mailed it again.
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa

from newsletter.identity import canonical_url, post_id_of

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Content ranks as newsletter.briefs names them, frozen here as this revision knew them.
_RANK_PAGE, _RANK_FEED_CONTENT, _RANK_API = 1, 2, 3
_CONTENT = ("url", "title", "authors", "published_at", "language", "countries", "tags", "lede", "analysis",
            "image_url", "content_hash")


def upgrade() -> None:
    with op.batch_alter_table("briefs") as batch:
        batch.add_column(sa.Column("canonical_url", sa.String(2048), nullable=True))
        batch.add_column(sa.Column("site", sa.String(512), nullable=True))
        batch.add_column(sa.Column("post_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("content_rank", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("withdrawn_reason", sa.Text(), nullable=True))
        batch.create_index("ix_briefs_canonical_url", ["canonical_url"], unique=False)
        batch.create_index("ix_briefs_site_post", ["site", "post_id"], unique=False)
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("deferred_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("walk", sa.JSON(), nullable=True))
    op.create_table(
        "sightings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("brief_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("key", sa.String(2048), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("canonical_url", sa.String(2048), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["brief_id"], ["briefs.id"], name=op.f("fk_sightings_brief_id_briefs"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sightings")),
        sa.UniqueConstraint("source", "key", name="uq_sightings_source_key"),
    )
    with op.batch_alter_table("sightings") as batch:
        batch.create_index("ix_sightings_brief", ["brief_id"], unique=False)
        batch.create_index("ix_sightings_canonical_url", ["canonical_url"], unique=False)
    _merge_copies(op.get_bind())


def _merge_copies(conn: sa.Connection) -> None:
    meta = sa.MetaData()
    briefs = sa.Table("briefs", meta, autoload_with=conn)
    sightings = sa.Table("sightings", meta, autoload_with=conn)
    mailings = sa.Table("mailings", meta, autoload_with=conn)
    rows = conn.execute(sa.select(briefs).order_by(briefs.c.first_seen_at, briefs.c.id)).all()
    # Union-find over the copies: one group per article.
    parent = {r.id: r.id for r in rows}
    position = {r.id: i for i, r in enumerate(rows)}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_by_name: dict[object, int] = {}
    identity: dict[int, tuple[str, str | None, int | None, int]] = {}
    for r in rows:
        canonical = canonical_url(r.url)
        wordpress = post_id_of(r.key)
        site, post_id = wordpress if wordpress else (None, None)
        rank = _RANK_API if r.key.isdigit() else _RANK_FEED_CONTENT if r.key != r.url else _RANK_PAGE
        identity[r.id] = (canonical, site, post_id, rank)
        for name in (("url", canonical), ("post", site, post_id) if wordpress else None):
            if name is None:
                continue
            if name in first_by_name:
                a, b = root(first_by_name[name]), root(r.id)
                # The oldest copy (rows come oldest first) stays the root.
                parent[max(a, b, key=position.__getitem__)] = min(a, b, key=position.__getitem__)
            else:
                first_by_name[name] = r.id
    groups: dict[int, list[sa.Row]] = {}
    for r in rows:
        groups.setdefault(root(r.id), []).append(r)
    merged: dict[int, int] = {}
    for keeper_id, members in groups.items():
        keeper = next(m for m in members if m.id == keeper_id)
        richest = max(members, key=lambda m: (identity[m.id][3], m.updated_at, m.id))
        canonical, site, post_id, rank = identity[richest.id]
        site_post = next(((identity[m.id][1], identity[m.id][2]) for m in members if identity[m.id][2]), (None, None))
        values = {name: getattr(richest, name) for name in _CONTENT}
        conn.execute(briefs.update().where(briefs.c.id == keeper.id).values(
            canonical_url=canonical, site=site_post[0], post_id=site_post[1], content_rank=rank,
            modified_at=max(m.modified_at for m in members), updated_at=max(m.updated_at for m in members),
            **values,
        ))
        for m in members:
            conn.execute(sightings.insert().values(
                brief_id=keeper.id, source=m.source, key=m.key, url=m.url, canonical_url=identity[m.id][0],
                content_hash=m.content_hash, modified_at=m.modified_at, first_seen_at=m.first_seen_at,
            ))
            if m.id != keeper.id:
                merged[m.id] = keeper.id
    if not merged:
        return
    for mailing in conn.execute(sa.select(mailings.c.id, mailings.c.brief_ids)).all():
        ids = list(mailing.brief_ids or [])
        if not any(i in merged for i in ids):
            continue
        renamed: list[int] = []
        for i in ids:
            kept = merged.get(i, i)
            if kept not in renamed:
                renamed.append(kept)
        conn.execute(mailings.update().where(mailings.c.id == mailing.id).values(brief_ids=renamed))
    conn.execute(briefs.delete().where(briefs.c.id.in_(list(merged))))


def downgrade() -> None:
    op.drop_table("sightings")
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("walk")
        batch.drop_column("deferred_until")
    with op.batch_alter_table("briefs") as batch:
        batch.drop_index("ix_briefs_site_post")
        batch.drop_index("ix_briefs_canonical_url")
        for column in ("withdrawn_reason", "withdrawn_at", "content_rank", "post_id", "site", "canonical_url"):
            batch.drop_column(column)
