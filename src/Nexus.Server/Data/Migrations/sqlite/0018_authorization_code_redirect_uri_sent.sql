-- Whether the authorization request carried redirect_uri (1) or left it to the application's only registered one (0).
-- RFC 6749 §4.1.3: when it was sent, the token request must send the identical value; redirect_uri holds the one used.
ALTER TABLE authorization_codes ADD COLUMN redirect_uri_sent INTEGER NOT NULL DEFAULT 0;
