-- Issue 20 (refresh storm): the background refreshers of several instances on one database take their due connections
-- by claiming them: refresh_claimed_until (Unix ms) marks a connection as taken by one instance's batch until then, so
-- the others pass over it instead of reading the same oldest rows and colliding on them. A claim only decides who
-- looks at a connection first; the row lock taken for the refresh still makes a refresh happen once. A write of the
-- refresh engine clears it, and a claim left by an instance that stopped simply runs out.
ALTER TABLE connections ADD COLUMN refresh_claimed_until BIGINT NULL;
