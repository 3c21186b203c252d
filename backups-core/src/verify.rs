//! Verifying a backup ([`crate::StoreBackups::verify`]): the scratch
//! databases a drill loads into, and how they are named.

pub use crate::ops::verify::{DrillDatabase, drill_renames};
