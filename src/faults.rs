//! Layer 0. Test-only fault injection. With the `failpoints` feature, named points in jobs can pause or
//! fail on demand: from `BERTH_FAILPOINTS=name=pause(ms),other=error` when the process starts
//! (so tests can kill a real process at a known place), or set in-process by tests. Without the
//! feature every point compiles to nothing.

#[cfg(feature = "failpoints")]
mod enabled {
    use std::collections::HashMap;
    use std::sync::Mutex;

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Fault {
        Pause(u64),
        Error,
        /// An error retrying cannot fix.
        Permanent,
    }

    #[derive(Debug, Default)]
    pub struct Faults {
        points: Mutex<HashMap<String, Fault>>,
    }

    impl Faults {
        pub fn from_env() -> Self {
            let faults = Self::default();
            for entry in std::env::var("BERTH_FAILPOINTS")
                .unwrap_or_default()
                .split(',')
            {
                let Some((name, action)) = entry.split_once('=') else {
                    continue;
                };
                let fault = match action.trim() {
                    "error" => Fault::Error,
                    other => match other
                        .strip_prefix("pause(")
                        .and_then(|r| r.strip_suffix(')'))
                    {
                        Some(ms) => Fault::Pause(ms.parse().unwrap_or(0)),
                        None => continue,
                    },
                };
                faults.set(name.trim(), Some(fault));
            }
            faults
        }

        pub fn set(&self, name: &str, fault: Option<Fault>) {
            let mut points = self.points.lock().expect("faults lock");
            match fault {
                Some(fault) => points.insert(name.to_owned(), fault),
                None => points.remove(name),
            };
        }

        pub async fn hit(&self, name: &str) -> anyhow::Result<()> {
            let fault = self.points.lock().expect("faults lock").get(name).cloned();
            match fault {
                None => Ok(()),
                Some(Fault::Pause(ms)) => {
                    tracing::warn!(failpoint = name, pause_ms = ms, "failpoint pausing");
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                    Ok(())
                }
                Some(Fault::Error) => anyhow::bail!("failpoint {name} injected an error"),
                Some(Fault::Permanent) => Err(crate::error::Permanent::new(format!(
                    "failpoint {name} injected a permanent error"
                ))
                .into()),
            }
        }
    }
}

#[cfg(feature = "failpoints")]
pub use enabled::{Fault, Faults};

#[cfg(not(feature = "failpoints"))]
#[derive(Debug, Default)]
pub struct Faults;

#[cfg(not(feature = "failpoints"))]
impl Faults {
    pub fn from_env() -> Self {
        Self
    }

    pub async fn hit(&self, _name: &str) -> anyhow::Result<()> {
        Ok(())
    }
}
