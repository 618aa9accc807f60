//! Parked tables: what the operator is told about a table the loader no longer loads.
//!
//! A definite error that wedges one table (an unsafe schema change the target cannot follow)
//! parks that table: the loader records it in the checkpoint ([`sluice_core::ParkedTable`],
//! committed with the data) and loads the other tables without it. Its changes after the park
//! position are not in the target, so only a fresh copy brings it back: the hint here spells
//! out the steps with the pipeline's own names.

use std::path::PathBuf;

use sluice_core::{TableId, meta};

use crate::registry::LogKind;
use crate::settings::Settings;

/// How to resync a parked table in this pipeline.
#[derive(Debug, Clone)]
pub struct Resync {
    pub pipeline: String,
    /// The local change log's directory.
    pub log_dir: PathBuf,
    /// The target schema.
    pub schema: String,
    /// Quotes an identifier for the target's SQL.
    pub quote: fn(&str) -> String,
}

impl Resync {
    pub fn from_settings(settings: &Settings) -> Resync {
        let LogKind::Local(log) = &settings.log;
        Resync {
            pipeline: settings.pipeline.clone(),
            log_dir: log.dir.clone(),
            schema: settings.target.schema().to_owned(),
            quote: settings.target.quote_fn(),
        }
    }

    /// The target's SQL that removes the parked table and the pipeline's checkpoint.
    pub fn target_sql(&self, table: &TableId) -> String {
        let quote = self.quote;
        let schema = quote(&self.schema);
        format!(
            "DROP TABLE {schema}.{}; DELETE FROM {schema}.{} WHERE pipeline = '{}';",
            quote(&table.name),
            quote(meta::CHECKPOINT_TABLE),
            self.pipeline.replace('\'', "''")
        )
    }

    /// What to do to load `table` again: every table is copied anew (a single table cannot
    /// be copied on its own yet), the others keep their rows until the copy replaces them.
    pub fn hint(&self, table: &TableId) -> String {
        format!(
            "Table {table} is parked: its changes are no longer loaded, the other tables go on. \
             To resync it, stop sync, then run `sluice teardown --yes`, remove the change log \
             directory \"{}\", run in the target: {} and run `sluice sync` again, which copies \
             every table anew.",
            self.log_dir.display(),
            self.target_sql(table),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hint_names_the_steps_with_quoted_names() {
        let resync = Resync {
            pipeline: "it's".into(),
            log_dir: "/data/log".into(),
            schema: "raw".into(),
            quote: |s| format!("\"{}\"", s.replace('"', "\"\"")),
        };
        let table = TableId::new("public", "T\"x");
        assert_eq!(
            resync.target_sql(&table),
            "DROP TABLE \"raw\".\"T\"\"x\"; DELETE FROM \"raw\".\"_sluice_checkpoints\" WHERE \
             pipeline = 'it''s';"
        );
        let hint = resync.hint(&table);
        assert!(hint.contains("sluice teardown --yes"), "{hint}");
        assert!(hint.contains("\"/data/log\""), "{hint}");
    }
}
