//! fleetform: the reconciler and CLI. `cli` parses; `aws` observes, plans and applies on
//! EC2; `local` runs the cluster on this machine; `jobs` submits and follows work;
//! `autoscaler` decides how many nodes of each type the work needs; `observe` is the one
//! status model that `status` and the `dashboard` show.

// Before the modules, so these shadow std's macros in all of them: a closed stdout
// (`fleetform job list | head -0`) must not panic a print site (see `out`).
macro_rules! println {
    () => { $crate::out::line(format_args!("")) };
    ($($arg:tt)*) => { $crate::out::line(format_args!($($arg)*)) };
}
// Only the AWS provider prints without a line break: unused in a local-only build.
#[allow(unused_macros)]
macro_rules! print {
    ($($arg:tt)*) => { $crate::out::text(format_args!($($arg)*)) };
}

pub mod autoscaler;
#[cfg(feature = "aws")]
pub mod aws;
pub mod binaries;
pub mod chaos;
pub mod cli;
pub mod cluster;
pub mod dashboard;
pub mod errors;
pub mod import;
pub mod jobs;
pub mod local;
pub mod observe;
pub mod out;
pub mod reconcile;
pub mod status;
pub mod task_logs;
pub mod validate;
pub mod waiting;

#[cfg(test)]
mod layering {
    /// No two modules use each other, directly or through others: the failure lists each
    /// ring and the `use` lines that form it.
    #[test]
    fn fleetform_has_no_module_cycles() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        fleetform_testkit::module_cycles::assert_no_module_cycles(&src);
    }
}
