-- Blocks of status-list slots leased by the hosts that issue (the SQLite
-- migration 0017 says why).
CREATE TABLE status_blocks (
    block     BIGINT PRIMARY KEY,
    host      TEXT COLLATE "C" NOT NULL,
    leased_ms BIGINT NOT NULL
);
