-- Blocks of status-list slots, leased by the hosts that issue: a host takes
-- the next free block of sequence numbers (docs/SCALE.md, § Status-list
-- slots) and hands out its slots from memory, so hosts sharing one database
-- never give two certificates the same slot, and the table is written once
-- per block, not once per certificate: no row every issuance updates.
CREATE TABLE status_blocks (
    block     INTEGER PRIMARY KEY,   -- sequence numbers block*size .. (block+1)*size
    host      TEXT    NOT NULL,      -- who leased it (host name, process id)
    leased_ms INTEGER NOT NULL
) STRICT;
