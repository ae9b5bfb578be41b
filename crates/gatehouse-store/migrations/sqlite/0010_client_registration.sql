-- Browser sign-in registration: where RP-initiated logout may return to (a JSON list, matched
-- exactly), and whether the client is a third party's (users consent before it gets their
-- data; 0 = first party). Existing clients get no post-logout URIs and stay first-party.
ALTER TABLE app_clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]';
ALTER TABLE app_clients ADD COLUMN third_party BIGINT NOT NULL DEFAULT 0;
