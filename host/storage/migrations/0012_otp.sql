-- 0012: one-time codes a recipient signs in with. Only keyed hashes are
-- kept (of the phone number and of the code), with a short expiry and a
-- count of wrong tries.
CREATE TABLE otp_codes (
    contact     TEXT    NOT NULL PRIMARY KEY,   -- keyed hash of the number
    code        TEXT    NOT NULL,               -- keyed hash of the code
    expires_ms  INTEGER NOT NULL,
    attempts    INTEGER NOT NULL,
    sent_ms     INTEGER NOT NULL
) WITHOUT ROWID;
