//! What berth keeps per connection on the API listener, set up when a client connects:
//!
//! - a bound on the connections one client IP holds at once (`server.max_connections_per_ip`):
//!   one over it is closed at once, so a slow client cannot hold the listener's connections;
//!   peers in `server.trusted_proxies` are not bound (a proxy carries many clients);
//! - a second handle on the socket, so that a handler can tell when its client has gone
//!   ([`client_gone`]) and stop work nobody will read (actix-web keeps running a handler after
//!   its client disconnects).
//!
//! Both live in the connection's data and go when the connection does.

use std::any::Any;
use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};

use actix_web::dev::Extensions;
use actix_web::HttpRequest;
use ipnet::IpNet;

use crate::configuration::ServerSettings;
use crate::routes::rate_limit::ip_key;

/// Open connections per client key.
#[derive(Debug, Default)]
struct Open {
    per_key: Mutex<HashMap<String, usize>>,
}

/// One open connection, counted until it is dropped with the connection's data.
struct Counted {
    open: Arc<Open>,
    key: String,
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut per_key = self.open.per_key.lock().expect("connections lock");
        if let Some(n) = per_key.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                per_key.remove(&self.key);
            }
        }
    }
}

impl Open {
    /// Counts a connection of `key`, unless it already holds `max`.
    fn admit(self: &Arc<Self>, key: String, max: usize) -> Option<Counted> {
        let mut per_key = self.per_key.lock().expect("connections lock");
        let n = per_key.entry(key.clone()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Counted {
            open: self.clone(),
            key,
        })
    }
}

/// The client's socket, for [`client_gone`].
struct PeerSocket(tokio::net::TcpStream);

/// The `on_connect` hook of the API listener.
pub fn on_connect(
    settings: &ServerSettings,
) -> impl Fn(&dyn Any, &mut Extensions) + Send + Sync + 'static {
    let open = Arc::new(Open::default());
    let max = settings.max_connections_per_ip.max(1);
    let trusted: Vec<IpNet> = settings.trusted_proxies.clone();
    move |connection, data| {
        let Some(socket) = connection.downcast_ref::<tokio::net::TcpStream>() else {
            return;
        };
        let Ok(peer) = socket.peer_addr() else {
            return;
        };
        let handle = second_handle(socket);
        if !is_trusted(&trusted, peer.ip()) {
            match open.admit(ip_key(peer.ip()), max) {
                Some(counted) => {
                    data.insert(counted);
                }
                None => {
                    metrics::counter!("berth_connections_refused_total").increment(1);
                    tracing::warn!(
                        max_connections_per_ip = max,
                        "too many connections from one client address; closing the new one"
                    );
                    if let Some(Ok(std)) = handle.map(tokio::net::TcpStream::into_std) {
                        let _ = std.shutdown(std::net::Shutdown::Both);
                    }
                    return;
                }
            }
        }
        if let Some(handle) = handle {
            data.insert(PeerSocket(handle));
        }
    }
}

fn is_trusted(trusted: &[IpNet], ip: IpAddr) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// A second tokio handle on the same socket (a duplicated descriptor).
fn second_handle(socket: &tokio::net::TcpStream) -> Option<tokio::net::TcpStream> {
    let owned = socket.as_fd().try_clone_to_owned().ok()?;
    let std = std::net::TcpStream::from(owned);
    std.set_nonblocking(true).ok()?;
    tokio::net::TcpStream::from_std(std).ok()
}

/// Resolves when the request's client has closed its connection (or it broke); never when the
/// client is still there, or when berth cannot tell.
pub async fn client_gone(req: &HttpRequest) {
    let Some(PeerSocket(socket)) = req.conn_data::<PeerSocket>() else {
        return std::future::pending().await;
    };
    let mut byte = [0u8; 1];
    match socket.peek(&mut byte).await {
        Ok(0) | Err(_) => {}
        // The client sent more (a pipelined request): it is still there.
        Ok(_) => std::future::pending().await,
    }
}
