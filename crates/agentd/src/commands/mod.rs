//! One module per command, each with its own entry point. Commands share
//! only the modules beside this one (setup, http, print, prompt, stream),
//! never each other.

pub(crate) mod approvals;
pub(crate) mod bench;
pub(crate) mod docs;
pub(crate) mod doctor;
pub(crate) mod keys;
pub(crate) mod list;
pub(crate) mod prune;
pub(crate) mod run;
pub(crate) mod secrets;
pub(crate) mod serve;
pub(crate) mod tail;
pub(crate) mod tool;
pub(crate) mod tree;
