-- The API sign-in flows a client may start (Cognito's ExplicitAuthFlows), as a JSON array of
-- their names (ALLOW_USER_PASSWORD_AUTH, ...). NULL, as every client created before this
-- has, reads as the default: password, refresh and custom sign-in.
ALTER TABLE app_clients ADD COLUMN explicit_auth_flows TEXT;
