//! The schema's migrations: each backend's own first files (the schemas
//! began apart), then one list both share. A migration's version is the
//! number its file name starts with; each runs once, in order.

/// A migration: its file name (whose number is its version) and its SQL.
type Migration = (&'static str, &'static str);

macro_rules! migration {
    ($dir:literal, $file:literal) => {
        ($file, include_str!(concat!("../migrations/", $dir, "/", $file)))
    };
}

const SQLITE: &[Migration] = &[
    migration!("sqlite", "0001_init.sql"),
    migration!("sqlite", "0002_leases.sql"),
    migration!("sqlite", "0003_tenant_docs.sql"),
    migration!("sqlite", "0004_tool_calls.sql"),
    migration!("sqlite", "0005_run_agent.sql"),
    migration!("sqlite", "0006_approvals.sql"),
    migration!("sqlite", "0007_run_profiles.sql"),
    migration!("sqlite", "0008_run_cost.sql"),
    migration!("sqlite", "0009_expired_status.sql"),
];

const POSTGRES: &[Migration] = &[
    migration!("postgres", "0001_init.sql"),
    migration!("postgres", "0002_tenant_docs.sql"),
    migration!("postgres", "0003_tool_calls.sql"),
    migration!("postgres", "0004_run_agent.sql"),
    migration!("postgres", "0005_approvals.sql"),
    migration!("postgres", "0006_run_profiles.sql"),
    migration!("postgres", "0007_run_cost.sql"),
    migration!("postgres", "0008_expired_status.sql"),
];

/// One file serves both backends from here on: a new migration goes here.
const COMMON: &[Migration] = &[
    migration!("common", "1001_api_keys.sql"),
    migration!("common", "1002_audit.sql"),
    migration!("common", "1003_resolved_by.sql"),
    migration!("common", "1004_secrets.sql"),
    migration!("common", "1005_org_limits.sql"),
    migration!("common", "1006_events_feed.sql"),
    migration!("common", "1007_console_logins.sql"),
    migration!("common", "1008_run_tree.sql"),
    migration!("common", "1009_run_tree_cost.sql"),
    migration!("common", "1010_run_tree_caps.sql"),
];

/// The first common version (what `RENUMBER` spells out).
#[cfg(test)]
const COMMON_FIRST: i64 = 1001;
#[cfg(test)]
/// How many common migrations there were when versions began to come from
/// file names: the ones an old database may have under its old numbers.
const OLD_COMMON: usize = 10;

/// A backend's migrations and where its databases numbered the common ones
/// before versions came from file names (they were counted on from the
/// backend's own list, one apart between backends).
pub(crate) struct Plan {
    pub(crate) list: Vec<(i64, &'static str)>,
    /// The version the first common migration had in such a database.
    pub(crate) old_common_first: i64,
}

/// What SQLite runs.
pub(crate) fn sqlite() -> Plan {
    Plan { list: versioned(SQLITE), old_common_first: SQLITE.len() as i64 + 1 }
}

/// What PostgreSQL runs.
pub(crate) fn postgres() -> Plan {
    Plan { list: versioned(POSTGRES), old_common_first: POSTGRES.len() as i64 + 1 }
}

fn versioned(own: &[Migration]) -> Vec<(i64, &'static str)> {
    own.iter().chain(COMMON).map(|(file, sql)| (version_of(file), *sql)).collect()
}

/// The number a file name starts with (`0007_x.sql` → 7); 0 if none, which
/// the test below refuses.
fn version_of(file: &str) -> i64 {
    file.split('_').next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// The statement that renumbers an old database's common migrations
/// (`$1`: their old first version); it changes nothing anywhere else.
pub(crate) const RENUMBER: &str = "UPDATE schema_migrations SET version = version - $1 + 1001
     WHERE version >= $1 AND version < $1 + 10
       AND NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version >= 1001)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_file_names_in_order() {
        for plan in [sqlite(), postgres()] {
            let versions: Vec<i64> = plan.list.iter().map(|(v, _)| *v).collect();
            assert!(versions.iter().all(|v| *v > 0), "{versions:?}");
            assert!(versions.windows(2).all(|w| w[0] < w[1]), "strictly increasing: {versions:?}");
            assert_eq!(versions.iter().filter(|v| **v >= COMMON_FIRST).count(), COMMON.len());
            assert!(plan.old_common_first < COMMON_FIRST);
        }
        // The renumbering covers exactly the common migrations that existed before it.
        assert!(COMMON.len() >= OLD_COMMON);
        assert!(RENUMBER.contains(&format!("- $1 + {COMMON_FIRST}")), "{RENUMBER}");
        assert!(RENUMBER.contains(&format!("< $1 + {OLD_COMMON}")), "{RENUMBER}");
    }
}
