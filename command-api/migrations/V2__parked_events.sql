-- Events an operator told a feed consumer to skip (`backforge consumers park`): the consumer's
-- stable name (`read_models`, `nats_events`, `nats_jobs`, or `all`), the event, why, who and when.
-- Command-side state like the others: each row is written in the same transaction as the
-- `EventParked` (or, on delete, `EventUnparked`) it describes in the `operations` stream. The
-- projector, replay and the relays read it (`projector::parked`); it lives outside the read-model
-- schema, so a replay keeps it.
CREATE TABLE IF NOT EXISTS parked_events (
    consumer   text NOT NULL,
    event_id   uuid NOT NULL,
    reason     text NOT NULL,
    parked_by  text NOT NULL,
    parked_at  timestamptz NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
