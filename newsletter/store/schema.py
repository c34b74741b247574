"""The store's tables (SQLAlchemy Core). Alembic migrations under `migrations/` create them.

Every timestamp is stored in UTC and read back as an aware UTC datetime, on SQLite
as on PostgreSQL, so no stage has to guess a zone.
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

from newsletter.states import DeliveryState, MailingStatus, check_clause

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator):
    """An aware UTC datetime; naive values are refused rather than guessed."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the store; use an aware UTC datetime")
        value = value.astimezone(timezone.utc)
        # SQLite has no zone type: store naive UTC text that sorts correctly.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


sources = sa.Table(
    "sources",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    # Conditional-GET validators per URL: {url: {"etag": ..., "last_modified": ...}}.
    sa.Column("validators", sa.JSON, nullable=False, default=dict),
    # WordPress: modified_gmt high-water mark of the last successful run (modified_after).
    sa.Column("cursor", sa.String(64)),
    sa.Column("last_run_at", UTCDateTime),
    sa.Column("last_success_at", UTCDateTime),
    sa.Column("last_error", sa.Text),
    # {"new": n, "updated": n, "unchanged": n} of the last run.
    sa.Column("last_counts", sa.JSON),
    # The site asked us to wait (Retry-After beyond the retry budget): no request before this time.
    sa.Column("deferred_until", UTCDateTime),
    # What the source kind remembers between runs besides the cursor (WordPress: the walk's state).
    sa.Column("walk", sa.JSON),
)

briefs = sa.Table(
    "briefs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(100), nullable=False),
    # Stable id within the source: the WordPress post id, else the canonical URL.
    sa.Column("key", sa.String(2048), nullable=False),
    # The Atom entry id (a tag URI); fixed when the brief is first stored, never rewritten.
    sa.Column("guid", sa.String(2048), nullable=False),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("authors", sa.JSON, nullable=False, default=list),
    sa.Column("published_at", UTCDateTime, nullable=False),
    sa.Column("modified_at", UTCDateTime, nullable=False),
    sa.Column("language", sa.String(8), nullable=False),
    sa.Column("countries", sa.JSON, nullable=False, default=list),
    sa.Column("tags", sa.JSON, nullable=False, default=list),
    # Sanitised HTML fragments.
    sa.Column("lede", sa.Text, nullable=False, default=""),
    sa.Column("analysis", sa.Text, nullable=False, default=""),
    sa.Column("image_url", sa.String(2048)),
    sa.Column("content_hash", sa.String(64), nullable=False),
    # When we first stored it: editions pick briefs by this, so a late-collected brief is never lost.
    sa.Column("first_seen_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # The article's identity across sources: its normalised URL, and its WordPress post id on
    # its site (host and path, no scheme) when a source told us.
    sa.Column("canonical_url", sa.String(2048)),
    sa.Column("site", sa.String(512)),
    sa.Column("post_id", sa.BigInteger),
    # How rich the source of the stored content is (REST API > feed content:encoded > page > feed
    # summary): a poorer source never overwrites a richer one.
    sa.Column("content_rank", sa.Integer, nullable=False, default=0),
    # Set when the publisher withdrew the article (trashed, unpublished, protected, deleted):
    # it leaves the feeds with a tombstone and never enters a new mailing.
    sa.Column("withdrawn_at", UTCDateTime),
    sa.Column("withdrawn_reason", sa.Text),
    sa.UniqueConstraint("source", "key", name="uq_briefs_source_key"),
    sa.Index("ix_briefs_language_published", "language", "published_at"),
    sa.Index("ix_briefs_first_seen", "first_seen_at"),
    sa.Index("ix_briefs_canonical_url", "canonical_url"),
    sa.Index("ix_briefs_site_post", "site", "post_id"),
)

# Every source that saw an article: one row per (source, key), pointing at the one brief.
sightings = sa.Table(
    "sightings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("brief_id", sa.Integer, sa.ForeignKey("briefs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("source", sa.String(100), nullable=False),
    # The source's own name for the item: WordPress post id, feed entry id, page URL.
    sa.Column("key", sa.String(2048), nullable=False),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("canonical_url", sa.String(2048), nullable=False),
    # Hash of the content this source last gave, so an unchanged re-fetch writes nothing.
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("modified_at", UTCDateTime, nullable=False),
    sa.Column("first_seen_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("source", "key", name="uq_sightings_source_key"),
    sa.Index("ix_sightings_brief", "brief_id"),
    sa.Index("ix_sightings_canonical_url", "canonical_url"),
)

subscribers = sa.Table(
    "subscribers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # Normalised with email-validator (domain lower-cased, IDNA).
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False, default=""),
    sa.Column("language", sa.String(8), nullable=False),
    # Empty list: every edition of the subscriber's language.
    sa.Column("editions", sa.JSON, nullable=False, default=list),
    # Empty list: every country.
    sa.Column("countries", sa.JSON, nullable=False, default=list),
    # pending | active | unsubscribed | bounced | complained
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("soft_bounces", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("confirmed_at", UTCDateTime),
    sa.Column("unsubscribed_at", UTCDateTime),
    sa.Index("ix_subscribers_status", "status"),
    # Never reuse the id of an erased subscriber: old links carry it in their tokens.
    sqlite_autoincrement=True,
)

consents = sa.Table(
    "consents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    # subscribe | confirm | import | preferences | unsubscribe
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("ip", sa.String(64)),
    sa.Column("user_agent", sa.String(512)),
    sa.Column("form_version", sa.String(64)),
    sa.Column("confirmed_at", UTCDateTime),
    sa.Column("detail", sa.JSON),
    sa.Index("ix_consents_subscriber", "subscriber_id"),
)

# Wins over everything: an address here is never mailed, whatever its subscriber row says.
suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("email", sa.String(320), primary_key=True),
    # hard_bounce | soft_bounce_limit | complaint | unsubscribed | manual | erased (email is then a hash)
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("detail", sa.Text),
)

mailings = sa.Table(
    "mailings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("edition", sa.String(100), nullable=False),
    # The schedule slot it fills (ISO time of the due run) or "manual-<time>": one mailing per slot.
    sa.Column("slot", sa.String(64), nullable=False),
    sa.Column("language", sa.String(8), nullable=False),
    # a MailingStatus (newsletter/states.py)
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("paused_reason", sa.Text),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("preheader", sa.Text, nullable=False, default=""),
    # Frozen, ordered list of brief ids.
    sa.Column("brief_ids", sa.JSON, nullable=False),
    # briefs.first_seen_at high-water mark this mailing covered; the next one starts after it.
    sa.Column("cutoff", UTCDateTime, nullable=False),
    # Rendered once, with personalisation placeholders; frozen after the first delivery.
    sa.Column("html", sa.Text),
    sa.Column("text", sa.Text),
    sa.Column("content_hash", sa.String(64)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime),
    sa.Column("finished_at", UTCDateTime),
    sa.UniqueConstraint("edition", "slot", name="uq_mailings_edition_slot"),
    sa.CheckConstraint(check_clause("status", MailingStatus), name="ck_mailings_status"),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # No foreign keys (migration 0008): PostgreSQL would check each of a mailing's million rows
    # with a trigger. Mailings are never deleted; `registry.erase` clears an erased subscriber's id.
    sa.Column("mailing_id", sa.Integer, nullable=False),
    sa.Column("subscriber_id", sa.Integer),
    sa.Column("email", sa.String(320), nullable=False),
    # a DeliveryState (newsletter/states.py); skipped: nothing in the mailing for them, why in last_error
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text),
    # Which worker claimed it and when: a crashed worker's claim expires and is retaken.
    sa.Column("claimed_by", sa.String(128)),
    sa.Column("claimed_at", UTCDateTime),
    sa.Column("next_attempt_at", UTCDateTime),
    sa.Column("sent_at", UTCDateTime),
    sa.Column("provider_message_id", sa.String(256)),
    # The copy it carries: a `mailing_contents` key, or NULL for the mailing's whole content.
    sa.Column("content_key", sa.String(32)),
    # One delivery per subscriber (so per address: theirs are unique), in the order the rows
    # are written, so the index grows at its end (migration 0010).
    sa.UniqueConstraint("mailing_id", "subscriber_id", name="uq_deliveries_mailing_subscriber"),
    # A claim's pick: a mailing's due deliveries read in id order off the index (migration 0010).
    sa.Index("ix_deliveries_mailing_state_id", "mailing_id", "state", "id"),
    sa.CheckConstraint(check_clause("state", DeliveryState), name="ck_deliveries_state"),
)

# Named leases held in the store, so two processes (or machines) never do one job at once.
locks = sa.Table(
    "locks",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("acquired_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)

# Every scheduled slot the scheduler handled, with news or without, so a restart (or
# `run --once` from cron) carries on after the last one instead of re-running or skipping.
schedule_slots = sa.Table(
    "schedule_slots",
    metadata,
    sa.Column("edition", sa.String(100), primary_key=True),
    # The slot's due instant in UTC, ISO form (the mailing's slot id).
    sa.Column("slot", sa.String(64), primary_key=True),
    sa.Column("due_at", UTCDateTime, nullable=False),
    sa.Column("handled_at", UTCDateTime, nullable=False),
    # mailing | no-news (the slot stays due for its grace time) | missed (passed unseen, beyond grace)
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("mailing_id", sa.Integer, sa.ForeignKey("mailings.id", ondelete="SET NULL")),
)

# What providers and recipients told us: bounces, complaints, unsubscribes.
events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
    # hard_bounce | soft_bounce | complaint | unsubscribe | delivered ...
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("email", sa.String(320)),
    sa.Column("provider", sa.String(32)),
    sa.Column("detail", sa.JSON),
    sa.Index("ix_events_email", "email"),
)

# Provider events already applied, by the provider's own identity for the event (Mailgun's
# token, SendGrid's sg_event_id, Postmark's record id and type): written in the transaction that
# applies the event, so a retried, replayed or re-signed copy is a no-op, even when concurrent.
webhook_events = sa.Table(
    "webhook_events",
    metadata,
    sa.Column("provider", sa.String(16), primary_key=True),
    sa.Column("event_key", sa.String(255), primary_key=True),
    sa.Column("received_at", UTCDateTime, nullable=False),
)

# Every POST of the subscribe form, whoever sent it and whatever the address's state: each
# confirmation link names one request and applies exactly its choices. Purged after expiry.
subscribe_requests = sa.Table(
    "subscribe_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("name", sa.String(200), nullable=False, default=""),
    sa.Column("language", sa.String(8), nullable=False),
    sa.Column("editions", sa.JSON, nullable=False, default=list),
    sa.Column("countries", sa.JSON, nullable=False, default=list),
    sa.Column("ip", sa.String(64)),
    sa.Column("user_agent", sa.String(512)),
    sa.Column("form_version", sa.String(64)),
    sa.Column("page_language", sa.String(8), nullable=False),
    sa.Column("requested_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    # queued (the mailer has not looked at it) | mailed | skipped (active or suppressed) | limited | confirmed
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("processed_at", UTCDateTime),
    sa.Column("confirmed_at", UTCDateTime),
    sa.Index("ix_subscribe_requests_email", "email"),
    sa.Index("ix_subscribe_requests_state", "state"),
    sa.Index("ix_subscribe_requests_expires", "expires_at"),
    sqlite_autoincrement=True,
)

# Single-use links to export or erase one's data, mailed to the address on request (one hour).
data_links = sa.Table(
    "data_links",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("used_at", UTCDateTime),
    sqlite_autoincrement=True,
)

# Abuse limits shared by every `serve` process: one row per counted action (a subscribe POST by
# a client, a confirmation email to an address), keyed by a keyed hash, never the plain value.
rate_hits = sa.Table(
    "rate_hits",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("bucket", sa.String(32), nullable=False),
    sa.Column("subject", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_rate_hits_bucket_subject_at", "bucket", "subject", "at"),
)

# What the bounce mailbox said, one row per message and address it names (auto-replies: address
# ""), written in the transaction that applies it: a message fetched twice, or by two fetches at
# once, is applied once.
bounce_reports = sa.Table(
    "bounce_reports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # The bounce message's Message-ID, else a hash of its bytes.
    sa.Column("identity", sa.String(300), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    # imap | maildir
    sa.Column("source", sa.String(16), nullable=False),
    # hard | soft | complaint | auto_reply
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("mailing_id", sa.Integer, sa.ForeignKey("mailings.id", ondelete="SET NULL")),
    sa.Column("delivery_id", sa.Integer, sa.ForeignKey("deliveries.id", ondelete="SET NULL")),
    sa.Column("status", sa.String(16), nullable=False, default=""),
    sa.Column("detail", sa.Text),
    sa.UniqueConstraint("identity", "email", name="uq_bounce_reports_identity_email"),
    sa.Index("ix_bounce_reports_mailing_id", "mailing_id"),
    sqlite_autoincrement=True,
)

# A mailing's per-reader copies: one row per distinct set of its briefs that some reader gets
# (the whole set stays in `mailings`). Rendered and frozen when the mailing is created.
mailing_contents = sa.Table(
    "mailing_contents",
    metadata,
    sa.Column("mailing_id", sa.Integer, sa.ForeignKey("mailings.id", ondelete="CASCADE"), primary_key=True),
    # newsletter.contents.content_key(brief_ids): the same set always has the same key.
    sa.Column("key", sa.String(32), primary_key=True),
    sa.Column("brief_ids", sa.JSON, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("preheader", sa.Text, nullable=False),
    sa.Column("html", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
)

# Every link a mailing's copies point to through `/r/{token}`: the redirect goes only here.
mailing_links = sa.Table(
    "mailing_links",
    metadata,
    sa.Column("mailing_id", sa.Integer, sa.ForeignKey("mailings.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("link_no", sa.Integer, primary_key=True),  # from 1; 0 is the open pixel in tracking_counts
    sa.Column("url", sa.Text, nullable=False),
    # original | donate | archive | other
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("brief_id", sa.Integer),
)

# Clicks and opens per mailing, link and day; never per reader (no IP, user agent or cookie).
tracking_counts = sa.Table(
    "tracking_counts",
    metadata,
    sa.Column("mailing_id", sa.Integer, sa.ForeignKey("mailings.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("link_no", sa.Integer, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    # counted (a person, as far as we can tell) | head | bot | scanner (filtered, kept apart)
    sa.Column("verdict", sa.String(16), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
)

# People who may use the console and the operator API, each with a role (admin | editor).
operators = sa.Table(
    "operators",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    # argon2id hash (PHC string) of the password.
    sa.Column("password_hash", sa.String(256), nullable=False),
    # SHA-256 of the operator's API token (the token itself is shown once and never stored).
    sa.Column("token_hash", sa.String(64), unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # Sign-in failures in a row; at the limit, sign-in is refused until locked_until.
    sa.Column("failed_logins", sa.Integer, nullable=False, default=0),
    sa.Column("locked_until", UTCDateTime),
)

# Console sessions: the cookie holds a random token; the store keeps only its SHA-256.
operator_sessions = sa.Table(
    "operator_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("operator_id", sa.Integer, sa.ForeignKey("operators.id", ondelete="CASCADE"), nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_seen_at", UTCDateTime, nullable=False),
    sa.Column("origin", sa.String(64)),
)

# Every operator action: who (name kept even after the account is removed), what, when, from where.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("operator", sa.String(128), nullable=False),
    # cli | api | console
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("origin", sa.String(128)),  # the client's address, or user@host for the CLI
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(256)),
    sa.Column("detail", sa.Text),
    sa.Index("ix_audit_log_at", "at"),
)
