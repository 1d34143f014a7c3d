//! Black-box tests against the real `agentd` binary, compiled as one test
//! binary (one link instead of one per file). Each module is one area.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

mod code_map;
mod common;
mod console;

mod agents;
mod api;
mod auth;
mod browser;
#[cfg(feature = "test-tools")]
mod cluster;
mod delegation;
#[cfg(feature = "test-tools")]
mod durability;
mod files;
mod hardening;
mod mcp;
mod prompts;
mod providers;
mod real_model;
mod runs;
mod safety;
mod second_pass;
mod skills;
mod snapshot;
mod teams;
mod tenant_models;
mod tools;
