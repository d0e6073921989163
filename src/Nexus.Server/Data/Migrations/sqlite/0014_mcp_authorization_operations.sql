-- Issue 15, item 4: at most 3 authorization rounds per *operation* (MCP authorization, Scope Challenge Handling),
-- no longer per connection. An operation is one attempt to obtain a grant for one need of a connection: a connect
-- or reconnect begins one (its consent is round 1); a step-up continues the open operation when every scope its
-- challenge names was already asked for in that operation, less than an hour after the operation's latest round
-- began; any other step-up begins a new operation (round 1). See src/Nexus.Server/RemoteMcp/McpStepUp.cs.
-- authorization_rounds (0011) now counts the rounds of the current operation, the first consent included.
-- The scopes asked for in the current operation's rounds (space-separated; never a secret).
ALTER TABLE connections ADD COLUMN authorization_scopes TEXT NULL;
-- When the current operation's latest round began (Unix milliseconds; 0: no operation, the next round begins one).
ALTER TABLE connections ADD COLUMN authorization_round_at BIGINT NOT NULL DEFAULT 0;
-- The old counter held step-ups per connection: every connection starts without an open operation.
UPDATE connections SET authorization_rounds = 0;
