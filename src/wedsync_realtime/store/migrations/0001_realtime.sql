-- The server's own tables, in schema `realtime`: the specification's data model
-- (SPEC.md, "Data model") in valid PostgreSQL.
--
-- User columns are text, not uuid: the server accepts any JWT `sub`, and these rows record who
-- subscribed, not a foreign key into one application's user table.

CREATE SCHEMA IF NOT EXISTS realtime;

CREATE TABLE realtime.realtime_channels (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name               text NOT NULL UNIQUE,
    type               text NOT NULL DEFAULT 'shared'
                       CHECK (type IN ('private', 'shared', 'broadcast', 'resource')),
    max_subscribers    integer NOT NULL DEFAULT 1000 CHECK (max_subscribers > 0),
    -- messages per minute
    message_rate_limit integer NOT NULL DEFAULT 100 CHECK (message_rate_limit > 0),
    -- bytes
    payload_size_limit integer NOT NULL DEFAULT 65536 CHECK (payload_size_limit > 0),
    auth_required      boolean NOT NULL DEFAULT true,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE realtime.realtime_subscriptions (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id              text NOT NULL,
    channel_id           uuid NOT NULL REFERENCES realtime.realtime_channels (id) ON DELETE CASCADE,
    filters              jsonb NOT NULL DEFAULT '{}'::jsonb,
    subscription_tier    text NOT NULL DEFAULT 'free',
    max_channels_allowed integer NOT NULL DEFAULT 10 CHECK (max_channels_allowed > 0),
    connected_at         timestamptz NOT NULL DEFAULT now(),
    last_activity        timestamptz NOT NULL DEFAULT now(),
    disconnected_at      timestamptz,
    UNIQUE (user_id, channel_id)
);
CREATE INDEX realtime_subscriptions_channel_idx ON realtime.realtime_subscriptions (channel_id);

CREATE TABLE realtime.realtime_presence (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       text NOT NULL,
    channel_id    uuid NOT NULL REFERENCES realtime.realtime_channels (id) ON DELETE CASCADE,
    status        text NOT NULL DEFAULT 'online'
                  CHECK (status IN ('online', 'away', 'busy', 'offline')),
    current_page  text,
    is_typing     boolean NOT NULL DEFAULT false,
    device_type   text CHECK (device_type IN ('desktop', 'mobile', 'tablet', 'unknown')),
    last_activity timestamptz NOT NULL DEFAULT now(),
    presence_data jsonb NOT NULL DEFAULT '{}'::jsonb,
    UNIQUE (user_id, channel_id)
);
CREATE INDEX realtime_presence_channel_idx ON realtime.realtime_presence (channel_id);

CREATE TABLE realtime.realtime_events (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_type      text NOT NULL,
    channel_id      uuid REFERENCES realtime.realtime_channels (id) ON DELETE CASCADE,
    user_id         text,
    payload         jsonb NOT NULL DEFAULT '{}'::jsonb,
    broadcast_count integer NOT NULL DEFAULT 0 CHECK (broadcast_count >= 0),
    delivered_count integer NOT NULL DEFAULT 0 CHECK (delivered_count >= 0),
    failed_count    integer NOT NULL DEFAULT 0 CHECK (failed_count >= 0),
    priority        smallint NOT NULL DEFAULT 5 CHECK (priority BETWEEN 1 AND 10),
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL DEFAULT now() + interval '5 minutes'
);
CREATE INDEX realtime_events_channel_created_idx
    ON realtime.realtime_events (channel_id, created_at);
CREATE INDEX realtime_events_expires_idx ON realtime.realtime_events (expires_at);

CREATE TABLE realtime.realtime_metrics (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    metric_name  text NOT NULL,
    channel_id   uuid REFERENCES realtime.realtime_channels (id) ON DELETE SET NULL,
    user_id      text,
    metric_value double precision NOT NULL,
    metric_unit  text,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX realtime_metrics_name_recorded_idx
    ON realtime.realtime_metrics (metric_name, recorded_at);
