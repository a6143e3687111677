-- The managers' console lists a site's events (every status), soonest first.
CREATE INDEX events_site ON events (site_id, starts_at);
