-- Server-side secrets shared by every node (e.g. the key that signs check-in codes).
CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;
