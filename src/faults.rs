//! Test-only fault injection. With the `failpoints` feature, `BERTH_FAILPOINTS=name=ms[,…]`
//! pauses the named point for that many milliseconds, so tests can kill the process at a known
//! place. Without the feature every point compiles to nothing.

#[cfg(feature = "failpoints")]
pub async fn pause(name: &str) {
    let Ok(spec) = std::env::var("BERTH_FAILPOINTS") else {
        return;
    };
    for entry in spec.split(',') {
        if let Some((point, ms)) = entry.split_once('=') {
            if point.trim() == name {
                if let Ok(ms) = ms.trim().parse::<u64>() {
                    tracing::warn!(failpoint = name, pause_ms = ms, "failpoint pausing");
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                }
            }
        }
    }
}

#[cfg(not(feature = "failpoints"))]
pub async fn pause(_name: &str) {}
