//! Parking: a definite error of the target that wedges one table, not parked yet, parks that
//! table instead of stopping the loader. The park is recorded in the checkpoint
//! ([`ParkedTable`], `lsn` = the applied LSN: none of the table's later changes are in the
//! target) and commits with the next batch's; the driver discards what the failed apply left
//! and reads the log again from the checkpoint, so the same records load without the table.
//! Any other failure is given back to the caller.

use std::fmt;
use std::sync::Arc;

use sluice_core::{Checkpoint, Classify, ErrorClass, ParkedTable, TableId};

use crate::error::LoadError;

/// What to tell the operator about a parked table: the steps to load it again, which only the
/// binary knows (they name the pipeline's change log and target).
#[derive(Clone)]
pub struct ResyncHint(Arc<dyn Fn(&TableId) -> String + Send + Sync>);

impl ResyncHint {
    pub fn new(hint: impl Fn(&TableId) -> String + Send + Sync + 'static) -> ResyncHint {
        ResyncHint(Arc::new(hint))
    }

    /// The hint for `table`.
    pub fn hint(&self, table: &TableId) -> String {
        (self.0)(table)
    }
}

impl Default for ResyncHint {
    /// No steps: the table's error alone is reported.
    fn default() -> ResyncHint {
        ResyncHint::new(|_| String::new())
    }
}

impl fmt::Debug for ResyncHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResyncHint(..)")
    }
}

/// The table `error` parks, given `checkpoint`: a definite error of the target that wedges one
/// table not parked already. `None` gives the failure back to the caller.
pub(crate) fn table_to_park(error: &LoadError, checkpoint: &Checkpoint) -> Option<TableId> {
    let LoadError::Target { .. } = error else {
        return None;
    };
    if error.class() != ErrorClass::Definite {
        return None;
    }
    let table = error.wedged_table()?;
    (!checkpoint.is_parked(table)).then(|| table.clone())
}

/// Records in `checkpoint` that `table` is parked as of its applied LSN, because of `reason`.
pub(crate) fn park(checkpoint: &mut Checkpoint, table: TableId, reason: String) {
    checkpoint.parked.push(ParkedTable {
        table,
        lsn: checkpoint.applied_lsn,
        reason,
    });
}

#[cfg(test)]
mod tests {
    use sluice_core::Lsn;

    use super::*;
    use crate::error::tests::SideError;

    fn target(class: ErrorClass, table: Option<&str>) -> LoadError {
        LoadError::target(SideError::new(class, table))
    }

    #[test]
    fn a_definite_target_error_that_wedges_a_table_parks_it() {
        let parks = table_to_park(
            &target(ErrorClass::Definite, Some("t")),
            &Checkpoint::default(),
        );
        assert_eq!(parks, Some(TableId::new("public", "t")));
    }

    #[test]
    fn a_table_parked_already_is_not_parked_twice() {
        let mut checkpoint = Checkpoint::default();
        park(
            &mut checkpoint,
            TableId::new("public", "t"),
            "wedged".into(),
        );
        let error = target(ErrorClass::Definite, Some("t"));
        assert_eq!(table_to_park(&error, &checkpoint), None);
        let other = target(ErrorClass::Definite, Some("u"));
        assert_eq!(
            table_to_park(&other, &checkpoint),
            Some(TableId::new("public", "u")),
            "another table still parks"
        );
    }

    #[test]
    fn transient_and_fatal_target_errors_are_given_back() {
        for class in [ErrorClass::Transient, ErrorClass::Fatal] {
            let error = target(class, Some("t"));
            assert_eq!(
                table_to_park(&error, &Checkpoint::default()),
                None,
                "{class:?}"
            );
        }
    }

    #[test]
    fn a_definite_error_that_wedges_no_single_table_is_given_back() {
        let error = target(ErrorClass::Definite, None);
        assert_eq!(table_to_park(&error, &Checkpoint::default()), None);
    }

    #[test]
    fn change_log_errors_never_park() {
        let error = LoadError::ChangeLog {
            class: ErrorClass::Definite,
            source: Box::new(SideError::new(ErrorClass::Definite, Some("t"))),
        };
        assert_eq!(table_to_park(&error, &Checkpoint::default()), None);
    }

    #[test]
    fn a_park_is_recorded_at_the_applied_lsn() {
        let mut checkpoint = Checkpoint {
            applied_lsn: Lsn(42),
            ..Default::default()
        };
        park(
            &mut checkpoint,
            TableId::new("public", "t"),
            "wedged".into(),
        );
        assert_eq!(
            checkpoint.parked,
            vec![ParkedTable {
                table: TableId::new("public", "t"),
                lsn: Lsn(42),
                reason: "wedged".into(),
            }]
        );
        assert!(checkpoint.is_parked(&TableId::new("public", "t")));
    }

    #[test]
    fn the_resync_hint_names_the_table() {
        let hint = ResyncHint::new(|t| format!("copy {t} again"));
        assert_eq!(
            hint.hint(&TableId::new("public", "t")),
            format!("copy {} again", TableId::new("public", "t"))
        );
        assert_eq!(ResyncHint::default().hint(&TableId::new("public", "t")), "");
    }
}
