#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The storage suite: every behaviour runs on SQLite and on PostgreSQL, each time on a fresh
//! database. PostgreSQL is the server named by `GATEHOUSE_TEST_POSTGRES_URL`.

#[path = "storage/audit.rs"]
mod audit;
#[path = "storage/authorization.rs"]
mod authorization;
#[path = "storage/backchannel.rs"]
mod backchannel;
#[path = "storage/clients.rs"]
mod clients;
#[path = "storage/consents.rs"]
mod consents;
#[path = "storage/federation.rs"]
mod federation;
#[path = "storage/fixtures.rs"]
mod fixtures;
#[path = "storage/groups.rs"]
mod groups;
#[path = "storage/hooks.rs"]
mod hooks;
#[path = "storage/isolation.rs"]
mod isolation;
#[path = "storage/passkeys.rs"]
mod passkeys;
#[path = "storage/pools.rs"]
mod pools;
#[path = "storage/purge.rs"]
mod purge;
#[path = "storage/security_events.rs"]
mod security_events;
#[path = "storage/sessions.rs"]
mod sessions;
#[path = "storage/ssf.rs"]
mod ssf;
#[path = "storage/txn.rs"]
mod txn;
#[path = "storage/users.rs"]
mod users;

use fixtures::Db;

/// `behaviour: sqlite_name, postgres_name;` makes two tests that run `behaviour(&Db)`.
macro_rules! on_both_backends {
    ($($behaviour:path: $sqlite:ident, $postgres:ident;)*) => {$(
        #[tokio::test]
        async fn $sqlite() {
            let db = Db::sqlite().await;
            $behaviour(&db).await;
            db.finish().await;
        }

        #[tokio::test]
        async fn $postgres() {
            let db = Db::postgres().await;
            $behaviour(&db).await;
            db.finish().await;
        }
    )*};
}

on_both_backends! {
    hooks::hooks_are_kept_per_pool_and_trigger: sqlite_hooks, postgres_hooks;
    passkeys::credentials_round_trip_and_count_once: sqlite_passkeys, postgres_passkeys;
    passkeys::ceremonies_are_taken_once: sqlite_passkey_ceremonies, postgres_passkey_ceremonies;
    federation::providers_are_kept_per_pool: sqlite_identity_providers, postgres_identity_providers;
    federation::linked_users_standing_unites_roles_and_groups: sqlite_linked_users_standing, postgres_linked_users_standing;
    federation::pending_sign_ins_are_taken_once: sqlite_pending_federations, postgres_pending_federations;
    federation::one_saml_key_per_pool: sqlite_saml_sp_keys, postgres_saml_sp_keys;
    federation::federated_sessions_go_with_their_session: sqlite_federated_sessions, postgres_federated_sessions;
    ssf::streams_are_compared_and_set: sqlite_ssf_streams, postgres_ssf_streams;
    backchannel::cursor_is_per_pool_and_transactional: sqlite_backchannel_cursor, postgres_backchannel_cursor;
    backchannel::deliveries_are_claimed_under_a_lease: sqlite_backchannel_lease, postgres_backchannel_lease;
    pools::create_and_look_up: sqlite_pool_create_and_look_up, postgres_pool_create_and_look_up;
    pools::slug_is_unique: sqlite_pool_slug_is_unique, postgres_pool_slug_is_unique;
    pools::hosts_conflict_and_are_replaced: sqlite_pool_hosts_conflict_and_are_replaced, postgres_pool_hosts_conflict_and_are_replaced;
    pools::settings_update: sqlite_pool_settings_update, postgres_pool_settings_update;
    pools::racing_host_replacements_do_not_merge: sqlite_racing_host_replacements, postgres_racing_host_replacements;
    pools::reconnect_keeps_data: sqlite_reconnect_keeps_data, postgres_reconnect_keeps_data;
    pools::signing_keys_are_replaced_in_a_transaction: sqlite_signing_keys_replaced, postgres_signing_keys_replaced;
    pools::key_families_round_trip_with_one_current_key_each: sqlite_key_families, postgres_key_families;
    pools::racing_backfills_add_one_id_token_key: sqlite_racing_id_key_backfills, postgres_racing_id_key_backfills;
    pools::deleting_a_pool_deletes_what_it_holds: sqlite_pool_deletion, postgres_pool_deletion;
    users::crud: sqlite_user_crud, postgres_user_crud;
    txn::racing_writers_lose_nothing: sqlite_racing_writers_lose_nothing, postgres_racing_writers_lose_nothing;
    txn::single_use_values_are_used_once: sqlite_single_use_values, postgres_single_use_values;
    txn::uncommitted_writes_are_invisible_and_dropped_ones_vanish: sqlite_uncommitted_writes, postgres_uncommitted_writes;
    txn::sessions_end_by_user_by_staff_and_by_actor_across_pools: sqlite_sessions_end_by_actor, postgres_sessions_end_by_actor;
    txn::revocations_are_read_in_commit_order: sqlite_revocations_in_commit_order, postgres_revocations_in_commit_order;
    txn::concurrent_impersonations_fail_alone: sqlite_concurrent_impersonations, postgres_concurrent_impersonations;
    txn::an_acting_user_is_read_under_its_lock: sqlite_acting_user_locked, postgres_acting_user_locked;
    users::username_unique_per_pool: sqlite_username_unique_per_pool, postgres_username_unique_per_pool;
    users::list_pages_in_byte_order: sqlite_users_list_pages_in_byte_order, postgres_users_list_pages_in_byte_order;
    users::identity_links: sqlite_identity_links, postgres_identity_links;
    users::verification_codes: sqlite_verification_codes, postgres_verification_codes;
    users::delete_removes_what_belongs_to_the_user: sqlite_delete_user_cascades, postgres_delete_user_cascades;
    users::concurrent_writers: sqlite_concurrent_writers, postgres_concurrent_writers;
    users::sign_in_failures_count_every_racer: sqlite_sign_in_failures, postgres_sign_in_failures;
    groups::crud: sqlite_group_crud, postgres_group_crud;
    groups::list_pages: sqlite_groups_list_pages, postgres_groups_list_pages;
    groups::memberships: sqlite_group_memberships, postgres_group_memberships;
    clients::crud: sqlite_client_crud, postgres_client_crud;
    consents::one_per_user_and_client_gone_with_either: sqlite_consents, postgres_consents;
    consents::a_revoked_consent_ends_only_that_client_s_authorizations: sqlite_consent_revocation_ends, postgres_consent_revocation_ends;
    clients::rows_from_before_registration_fields: sqlite_clients_from_before_registration, postgres_clients_from_before_registration;
    clients::auth_flows_round_trip_and_update: sqlite_client_auth_flows, postgres_client_auth_flows;
    sessions::create_list_and_revoke: sqlite_sessions, postgres_sessions;
    sessions::token_revocation: sqlite_token_revocation, postgres_token_revocation;
    isolation::pools_do_not_see_each_other: sqlite_pool_isolation, postgres_pool_isolation;
    audit::append_and_filter: sqlite_audit_filters_and_paging, postgres_audit_filters_and_paging;
    audit::mutations_record_their_events: sqlite_audit_atomic_with_mutations, postgres_audit_atomic_with_mutations;
    audit::failed_audit_write_undoes_the_mutation: sqlite_failed_audit_undoes_mutation, postgres_failed_audit_undoes_mutation;
    audit::batches_are_all_or_nothing: sqlite_audit_batches, postgres_audit_batches;
    purge::sessions_codes_and_failures_at_their_limits: sqlite_purge_at_the_limits, postgres_purge_at_the_limits;
    purge::revoked_tokens_go_but_the_newest_of_each_pool_stays: sqlite_purge_keeps_newest_revocation, postgres_purge_keeps_newest_revocation;
    purge::audit_retention_is_per_pool: sqlite_purge_audit_retention_per_pool, postgres_purge_audit_retention_per_pool;
    purge::purges_go_in_batches_until_done: sqlite_purge_in_batches, postgres_purge_in_batches;
    purge::concurrent_purges_delete_each_row_once: sqlite_purge_concurrently, postgres_purge_concurrently;
    authorization::codes_and_refresh_tokens_are_used_once: sqlite_codes_used_once, postgres_codes_used_once;
    authorization::expired_codes_and_refresh_tokens_are_purged: sqlite_codes_purged, postgres_codes_purged;
    security_events::events_round_trip_per_pool: sqlite_security_events_round_trip, postgres_security_events_round_trip;
    security_events::events_are_read_in_commit_order: sqlite_security_events_in_commit_order, postgres_security_events_in_commit_order;
    security_events::the_bell_rings_after_commits_that_appended: sqlite_security_event_bell, postgres_security_event_bell;
    security_events::the_purge_keeps_the_newest_and_leaves_a_horizon: sqlite_security_event_purge, postgres_security_event_purge;
}

/// Several instances starting at once on one fresh PostgreSQL database all come up: the
/// migrations are serialised by an advisory lock.
#[tokio::test]
async fn postgres_concurrent_start_migrates_once() {
    let url = gatehouse_store::test_support::fresh_postgres_url().await;
    let (a, b, c) = tokio::join!(
        gatehouse_store::SqlStore::connect(&url),
        gatehouse_store::SqlStore::connect(&url),
        gatehouse_store::SqlStore::connect(&url),
    );
    let stores = [a.unwrap(), b.unwrap(), c.unwrap()];
    for store in &stores {
        store.ping().await.unwrap();
        assert_eq!(store.dialect(), gatehouse_store::Dialect::Postgres);
        store.close().await;
    }
    gatehouse_store::test_support::drop_postgres_database(&url).await;
}

#[tokio::test]
async fn sqlite_in_memory_works() {
    let db = gatehouse_store::SqlStore::connect("sqlite::memory:")
        .await
        .unwrap();
    let pool = fixtures::new_pool(&db, "acme").await;
    fixtures::new_user(&db, pool.id, "alice").await;
    use gatehouse_domain::store::Store;
    assert_eq!(db.list_users(pool.id, None, 10).await.unwrap().len(), 1);
    assert_eq!(db.dialect(), gatehouse_store::Dialect::Sqlite);
}
