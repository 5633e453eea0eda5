-- migrate:up
-- minipaas durable streams (schema version 2).
--
-- One table per stream, named after the stream, plus the registry `minipaas_streams` and the
-- consumer groups `minipaas_stream_groups` (one stored offset per group, committed by its
-- consumer). Usable standalone: `psql -1 -v ON_ERROR_STOP=1 -f sql/002_streams.sql` (dbmate: as
-- is); running it again changes nothing.
--
-- Why ids are assigned at commit. The original gave each event a sequence value at insert and
-- consumers asked for `id > last_id`. Sequence values become visible in commit order, not in
-- value order: a transaction holding id 7 that commits after id 8 was read is skipped forever.
-- Here an event's `id` (its position, what consumers see and store) is NULL until its transaction
-- is about to commit: a deferred constraint trigger then takes a per-stream advisory lock, which
-- it holds until the commit is done, and numbers the transaction's events from the stream's
-- sequence. The lock makes commits of one stream take positions one after another, so a
-- transaction that has a position committed (became visible) before the next one could take a
-- later position: whoever sees position n sees every position below n, and `id > last_id` is
-- exact again, for the original consume as well as for groups.
--
-- The trade-off against the other proven approach (a horizon on transaction ids,
-- xid < pg_snapshot_xmin(pg_current_snapshot()), with a compound (xid, id) cursor):
--   + consumers see an event as soon as it commits; with the horizon one long-running write
--     transaction anywhere in the cluster (or a forgotten prepared transaction) holds back every
--     stream until it ends;
--   + the cursor stays one bigint, so the original `minipaas_stream_consume(name, last_id, batch)`
--     is fixed without changing how consumers call it; positions have no holes, so lag is exact;
--   - the commits (not the transactions) of publishers to one stream are serialized: the lock is
--     held from the commit-time trigger to the end of the commit (one WAL flush). A stream takes
--     about one publishing commit per flush; batches (many events per transaction) amortize it;
--   - every event is written twice (insert, then the position), and the id that publish returns
--     is the event's insert id (`event_id`), not its position, which does not exist yet.
-- Transactions publishing to several streams lock them in name order, so they cannot deadlock.

CREATE TABLE IF NOT EXISTS minipaas_schema_migrations (
    version bigint PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION minipaas_check_name(object_name text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF object_name IS NULL OR object_name !~ '^[a-z_][a-z0-9_]*$' OR length(object_name) > 63 THEN
        RAISE EXCEPTION 'invalid name %: names match ^[a-z_][a-z0-9_]*$ and have at most 63 characters',
            coalesce(quote_literal(object_name), 'NULL') USING ERRCODE = 'invalid_name';
    END IF;
END $$;

CREATE TABLE IF NOT EXISTS minipaas_streams (
    name text PRIMARY KEY CHECK (name ~ '^[a-z_][a-z0-9_]*$'),
    -- the sequence positions are drawn from (named after the table's oid: always unique, short)
    position_sequence text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS minipaas_stream_groups (
    stream text NOT NULL REFERENCES minipaas_streams (name) ON DELETE CASCADE,
    group_name text NOT NULL CHECK (group_name ~ '^[a-z_][a-z0-9_]*$'),
    -- the last position the group's consumer committed as processed
    last_id bigint NOT NULL DEFAULT 0,
    committed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, group_name)
);

DROP FUNCTION IF EXISTS minipaas_stream_create(text);
DROP FUNCTION IF EXISTS minipaas_stream_delete(text);
DROP FUNCTION IF EXISTS minipaas_stream_publish(text, jsonb);
DROP FUNCTION IF EXISTS minipaas_stream_consume(text, bigint, integer);

-- The registry row of a stream; raises when the stream does not exist.
CREATE OR REPLACE FUNCTION minipaas_stream_config(stream_name text) RETURNS minipaas_streams
LANGUAGE plpgsql STABLE AS $$
DECLARE
    s minipaas_streams;
BEGIN
    SELECT * INTO s FROM minipaas_streams WHERE name = stream_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'stream % does not exist', coalesce(quote_literal(stream_name), 'NULL')
            USING ERRCODE = 'undefined_table';
    END IF;
    RETURN s;
END $$;

-- Commit-time trigger: gives this transaction's unnumbered events their positions (see the top).
CREATE OR REPLACE FUNCTION minipaas_stream_seal() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    own bigint;
    s record;
    n bigint;
    base bigint;
BEGIN
    -- The first trigger of the transaction numbers all its events; the others find theirs done.
    EXECUTE format('SELECT id FROM %I.%I WHERE event_id = $1', TG_TABLE_SCHEMA, TG_TABLE_NAME)
        INTO own USING NEW.event_id;
    IF own IS NOT NULL THEN
        RETURN NULL;
    END IF;
    FOR s IN SELECT r.name, r.position_sequence FROM minipaas_streams r
             WHERE r.name = TG_TABLE_NAME
                OR r.name = ANY (string_to_array(current_setting('minipaas.published_streams', true), ','))
             ORDER BY r.name LOOP
        PERFORM pg_advisory_xact_lock(hashtext('minipaas_stream_seal'), hashtext(s.name));
        EXECUTE format('SELECT count(*) FROM %I WHERE xid = pg_current_xact_id() AND id IS NULL', s.name)
            INTO n;
        CONTINUE WHEN n = 0;
        -- Only sealers holding this lock draw from the sequence, so a block can be reserved.
        base := nextval(s.position_sequence);
        PERFORM setval(s.position_sequence, base + n - 1);
        EXECUTE format($f$
            UPDATE %1$I e SET id = $1 + o.rn - 1
            FROM (SELECT event_id, row_number() OVER (ORDER BY event_id) AS rn
                  FROM %1$I WHERE xid = pg_current_xact_id() AND id IS NULL) o
            WHERE e.event_id = o.event_id$f$, s.name) USING base;
    END LOOP;
    PERFORM set_config('minipaas.published_streams', '', true);
    RETURN NULL;
END $$;

-- Creates a stream; does nothing when it exists.
CREATE FUNCTION minipaas_stream_create(stream_name text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    seq text;
BEGIN
    PERFORM minipaas_check_name(stream_name);
    PERFORM pg_advisory_xact_lock(hashtext('minipaas_registry'));
    IF EXISTS (SELECT 1 FROM minipaas_streams r WHERE r.name = stream_name) THEN
        RETURN;
    END IF;
    IF to_regclass(quote_ident(stream_name)) IS NOT NULL THEN
        RAISE EXCEPTION 'cannot create stream %: a relation of that name exists', quote_literal(stream_name)
            USING ERRCODE = 'duplicate_table';
    END IF;
    EXECUTE format($f$
        CREATE TABLE %1$I (
            -- position in commit order; NULL until the publishing transaction commits
            id bigint UNIQUE,
            event_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
            payload jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )$f$, stream_name);
    EXECUTE format('CREATE INDEX ON %I (xid) WHERE id IS NULL', stream_name);
    EXECUTE format($f$
        CREATE CONSTRAINT TRIGGER minipaas_stream_seal AFTER INSERT ON %1$I
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION minipaas_stream_seal()$f$,
        stream_name);
    seq := 'minipaas_stream_position_' || to_regclass(quote_ident(stream_name))::oid;
    EXECUTE format('CREATE SEQUENCE %I AS bigint OWNED BY %I.id', seq, stream_name);
    INSERT INTO minipaas_streams (name, position_sequence) VALUES (stream_name, seq);
END $$;

-- Drops a stream, its events and its groups.
CREATE FUNCTION minipaas_stream_delete(stream_name text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    s minipaas_streams := minipaas_stream_config(stream_name);
BEGIN
    EXECUTE format('DROP TABLE %I', s.name);
    DELETE FROM minipaas_streams r WHERE r.name = s.name;
END $$;

-- Remembers that this transaction published to `stream_name`, for the lock order at commit.
CREATE OR REPLACE FUNCTION minipaas_stream_note_published(stream_name text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    seen text := coalesce(current_setting('minipaas.published_streams', true), '');
BEGIN
    IF NOT (stream_name = ANY (string_to_array(seen, ','))) THEN
        PERFORM set_config('minipaas.published_streams',
            CASE WHEN seen = '' THEN stream_name ELSE seen || ',' || stream_name END, true);
    END IF;
END $$;

-- Publishes one event of any size. Returns its insert id (`event_id`; its position, which
-- consumers see as `id`, is assigned at commit). NOTIFY on the stream's name carries no payload.
CREATE FUNCTION minipaas_stream_publish(stream_name text, event jsonb)
RETURNS TABLE (id bigint, payload jsonb, created_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    s minipaas_streams := minipaas_stream_config(stream_name);
BEGIN
    PERFORM minipaas_stream_note_published(s.name);
    RETURN QUERY EXECUTE format($f$
        INSERT INTO %1$I (payload) VALUES ($1) RETURNING event_id, payload, created_at$f$, s.name)
        USING event;
    PERFORM pg_notify(s.name, '');
END $$;

-- Publishes each element of the JSON array `events`, in order; returns how many.
CREATE OR REPLACE FUNCTION minipaas_stream_publish_many(stream_name text, events jsonb)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    s minipaas_streams := minipaas_stream_config(stream_name);
    n bigint;
BEGIN
    IF jsonb_typeof(events) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'events must be a JSON array' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM minipaas_stream_note_published(s.name);
    EXECUTE format($f$
        WITH i AS (
            INSERT INTO %1$I (payload)
            SELECT e FROM jsonb_array_elements($1) WITH ORDINALITY AS t(e, n) ORDER BY n
            RETURNING 1)
        SELECT count(*) FROM i$f$, s.name) INTO n USING events;
    PERFORM pg_notify(s.name, '');
    RETURN n;
END $$;

-- The original consume: up to `batch` committed events after position `last_id`, in order.
CREATE FUNCTION minipaas_stream_consume(stream_name text, last_id bigint, batch integer)
RETURNS TABLE (id bigint, payload jsonb, created_at timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    s minipaas_streams := minipaas_stream_config(stream_name);
BEGIN
    RETURN QUERY EXECUTE format($f$
        SELECT e.id, e.payload, e.created_at FROM %1$I e
        WHERE e.id > $1 ORDER BY e.id LIMIT $2$f$, s.name) USING last_id, batch;
END $$;

-- Creates a consumer group starting at the beginning (`earliest`) or after the current last
-- event (`latest`); does nothing when it exists. Each group is one logical consumer.
CREATE OR REPLACE FUNCTION minipaas_stream_group_create(stream_name text, group_name text, start text DEFAULT 'earliest')
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    s minipaas_streams := minipaas_stream_config(stream_name);
    pos bigint := 0;
BEGIN
    PERFORM minipaas_check_name(group_name);
    IF start NOT IN ('earliest', 'latest') THEN
        RAISE EXCEPTION 'start is earliest or latest, not %', quote_literal(start)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF start = 'latest' THEN
        EXECUTE format('SELECT coalesce(max(id), 0) FROM %I', s.name) INTO pos;
    END IF;
    INSERT INTO minipaas_stream_groups AS g (stream, group_name, last_id)
    VALUES (s.name, $2, pos)
    ON CONFLICT ON CONSTRAINT minipaas_stream_groups_pkey DO NOTHING;
    SELECT g.last_id INTO pos FROM minipaas_stream_groups g WHERE g.stream = s.name AND g.group_name = $2;
    RETURN pos;
END $$;

CREATE OR REPLACE FUNCTION minipaas_stream_group_delete(stream_name text, group_name text)
RETURNS boolean
LANGUAGE sql AS $$
    WITH d AS (DELETE FROM minipaas_stream_groups g WHERE g.stream = $1 AND g.group_name = $2 RETURNING 1)
    SELECT count(*) > 0 FROM d
$$;

-- The group's stored offset; raises when the group does not exist.
CREATE OR REPLACE FUNCTION minipaas_stream_group_offset(stream_name text, group_name text)
RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE
    pos bigint;
BEGIN
    SELECT g.last_id INTO pos FROM minipaas_stream_groups g WHERE g.stream = $1 AND g.group_name = $2;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'stream % has no consumer group %', quote_literal($1), quote_literal($2)
            USING ERRCODE = 'undefined_object';
    END IF;
    RETURN pos;
END $$;

-- Up to `batch` events after the group's committed offset, in order. Reading does not move the
-- offset: the consumer commits what it processed with minipaas_stream_commit.
CREATE OR REPLACE FUNCTION minipaas_stream_read(stream_name text, group_name text, batch integer DEFAULT 100)
RETURNS TABLE (id bigint, payload jsonb, created_at timestamptz)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY SELECT c.id, c.payload, c.created_at
    FROM minipaas_stream_consume(stream_name, minipaas_stream_group_offset(stream_name, group_name), batch) c;
END $$;

-- Commits the group's offset forward to `last_id` (never backward: use minipaas_stream_seek);
-- refuses a position past the last committed event. Returns the stored offset.
CREATE OR REPLACE FUNCTION minipaas_stream_commit(stream_name text, group_name text, last_id bigint)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    s minipaas_streams := minipaas_stream_config(stream_name);
    top bigint;
    pos bigint;
BEGIN
    EXECUTE format('SELECT coalesce(max(id), 0) FROM %I', s.name) INTO top;
    IF $3 > greatest(top, pg_sequence_last_value(s.position_sequence::regclass)) THEN
        RAISE EXCEPTION 'cannot commit position % of stream %: its last event is %', $3, quote_literal(s.name), top
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE minipaas_stream_groups g SET last_id = greatest(g.last_id, $3), committed_at = now()
    WHERE g.stream = s.name AND g.group_name = $2
    RETURNING g.last_id INTO pos;
    IF NOT FOUND THEN
        PERFORM minipaas_stream_group_offset(s.name, $2);
    END IF;
    RETURN pos;
END $$;

-- Sets the group's offset to any position (replay or skip).
CREATE OR REPLACE FUNCTION minipaas_stream_seek(stream_name text, group_name text, last_id bigint)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    pos bigint;
BEGIN
    UPDATE minipaas_stream_groups g SET last_id = $3, committed_at = now()
    WHERE g.stream = $1 AND g.group_name = $2
    RETURNING g.last_id INTO pos;
    IF NOT FOUND THEN
        PERFORM minipaas_stream_group_offset($1, $2);
    END IF;
    RETURN pos;
END $$;

-- Per stream (one or all) and group: events stored, last position, oldest event, and each
-- group's offset and lag (events after its offset). A stream without groups has one row with a
-- NULL group.
CREATE OR REPLACE FUNCTION minipaas_stream_stats(stream_name text DEFAULT NULL)
RETURNS TABLE (
    stream text, events bigint, last_id bigint, oldest_at timestamptz,
    group_name text, group_last_id bigint, lag bigint, committed_at timestamptz
)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    r record;
    n bigint;
    top bigint;
    oldest timestamptz;
BEGIN
    IF stream_name IS NOT NULL THEN
        PERFORM minipaas_stream_config(stream_name);
    END IF;
    FOR r IN SELECT s.name FROM minipaas_streams s
             WHERE $1 IS NULL OR s.name = $1 ORDER BY s.name LOOP
        EXECUTE format('SELECT count(*), max(id), min(created_at) FROM %I WHERE id IS NOT NULL', r.name)
            INTO n, top, oldest;
        RETURN QUERY EXECUTE format($f$
            SELECT $1, $2, $3, $4, g.group_name, g.last_id,
                (SELECT count(*) FROM %1$I e WHERE e.id > g.last_id), g.committed_at
            FROM (SELECT NULL) AS one
            LEFT JOIN minipaas_stream_groups g ON g.stream = $1
            ORDER BY g.group_name$f$, r.name) USING r.name, n, top, oldest;
    END LOOP;
END $$;

-- Deletes events every group has committed (at or below the slowest group's offset) and, when
-- `older_than` is given, only those older than it. Without groups nothing is known to be
-- consumed: only `older_than` deletes. Returns how many events were deleted.
CREATE OR REPLACE FUNCTION minipaas_stream_trim(stream_name text, older_than interval DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    s minipaas_streams := minipaas_stream_config(stream_name);
    slowest bigint;
    n bigint;
BEGIN
    SELECT min(g.last_id) INTO slowest FROM minipaas_stream_groups g WHERE g.stream = s.name;
    IF slowest IS NULL AND older_than IS NULL THEN
        RETURN 0;
    END IF;
    EXECUTE format($f$
        WITH d AS (
            DELETE FROM %1$I e
            WHERE e.id IS NOT NULL
              AND ($1 IS NULL OR e.id <= $1)
              AND ($2 IS NULL OR e.created_at < now() - $2)
            RETURNING 1)
        SELECT count(*) FROM d$f$, s.name) INTO n USING slowest, older_than;
    RETURN n;
END $$;

INSERT INTO minipaas_schema_migrations (version, name) VALUES (2, '002_streams')
ON CONFLICT (version) DO NOTHING;
