-- The audit log's hourly retention (`engine.audit`, WEDSYNC_AUDIT_RETENTION_DAYS) deletes rows by
-- these instants; without an index each pass would scan the whole table.
CREATE INDEX realtime_subscriptions_disconnected_idx
    ON realtime.realtime_subscriptions (disconnected_at) WHERE disconnected_at IS NOT NULL;
CREATE INDEX realtime_presence_last_activity_idx ON realtime.realtime_presence (last_activity);
CREATE INDEX realtime_events_created_idx ON realtime.realtime_events (created_at);
CREATE INDEX realtime_metrics_recorded_idx ON realtime.realtime_metrics (recorded_at);
