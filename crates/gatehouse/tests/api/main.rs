//! Gatehouse's integration tests, built as one binary. Each test spawns its own server on a
//! free port over a fresh database and talks to it over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod abuse;
mod admin;
mod authority;
mod backchannel_logout;
mod browser;
mod browser_signin;
mod cli;
mod code_flow;
mod cognito;
mod common;
mod consent;
mod discovery;
mod edge;
mod federation;
mod federation_logout;
mod fleet;
mod flow;
mod fuzz;
mod group_dominance;
mod id_token_keys;
mod invitation;
mod key_rotation;
mod mfa;
mod operator_cli;
mod password_reset_pages;
mod purge;
mod reference;
mod refresh_flow;
mod resources;
mod revocation;
mod revocation_feed;
mod revocation_stream;
mod rp_harness;
mod security;
mod security_events;
mod single_use;
mod smtp;
mod ssf;
mod staff_signin;
mod takeover;
mod theme;
mod token_exchange;
mod userinfo;
mod verify;
