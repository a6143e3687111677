-- A fair draw (issue 26). A draw event has `draw_at` (when the draw runs),
-- `draw` (priority_groups, public_value, seed_commitment and, once drawn,
-- entrants_hash and seed) and `draw_secret` (hex of the 32 random bytes S;
-- served only once drawn_at is set). First-come events have none.
ALTER TABLE events ADD COLUMN draw_at timestamptz;
ALTER TABLE events ADD COLUMN drawn_at timestamptz;
ALTER TABLE events ADD COLUMN draw jsonb;
ALTER TABLE events ADD COLUMN draw_secret text;
-- The worker finds the draws that are due here.
CREATE INDEX events_draws_due ON events (draw_at) WHERE draw_at IS NOT NULL AND drawn_at IS NULL;

-- One application per person per draw event (withdrawn ones aside). The
-- time of applying is kept for the person's own list; the draw never reads it.
CREATE TABLE applications (
    id             bigint PRIMARY KEY,             -- ApplicationId: random 60-bit
    event_id       bigint NOT NULL REFERENCES events (id),
    user_id        bigint NOT NULL REFERENCES users (id),
    state          text NOT NULL CHECK (state IN ('applied', 'withdrawn', 'drawn', 'not_eligible', 'cancelled')),
    priority_group text,                           -- the group's name at the draw (NULL: none)
    draw_rank      bigint,                         -- 1-based place in the drawn order
    booking_id     bigint REFERENCES bookings (id),
    refusal        text,                           -- the eligibility rule that failed at the draw
    created_ms     bigint NOT NULL,
    updated_ms     bigint NOT NULL,
    CHECK ((state = 'drawn') = (draw_rank IS NOT NULL AND booking_id IS NOT NULL))
);
CREATE UNIQUE INDEX applications_one ON applications (event_id, user_id) WHERE state <> 'withdrawn';
CREATE INDEX applications_event ON applications (event_id, state);
CREATE INDEX applications_user ON applications (user_id, created_ms);
