//! Which parts of berth one process runs: the command line's choice, not the file's.

/// Which parts of berth this process runs (`serve`, `--no-worker`, `--worker-only`).
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    /// The public and admin API (and, for local-runtime tenants, the sites listener).
    pub api: bool,
    pub worker: bool,
}
