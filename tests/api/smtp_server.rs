//! A real SMTP server for the email tests, in the test binary: it listens on a loopback port,
//! speaks the SMTP of RFC 5321 that a client sending one message needs (EHLO/HELO, MAIL, RCPT,
//! DATA with dot-unstuffing, RSET, NOOP, QUIT) and keeps every message it accepted. It can go
//! down (the port refuses connections and open sessions are cut) and come back on the same port.
//! It needs nothing outside cargo, unlike an SMTP server process.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What a running server shares with its threads.
#[derive(Default)]
struct Shared {
    /// The raw messages accepted (each as the client sent it after `DATA`, unstuffed).
    messages: Mutex<Vec<String>>,
    /// Open sessions, so that going down cuts them.
    sessions: Mutex<Vec<TcpStream>>,
    stopping: AtomicBool,
}

pub struct SmtpServer {
    pub port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl SmtpServer {
    /// A server that will listen on a free port once started.
    pub fn new() -> Self {
        Self {
            port: crate::helpers::free_port(),
            shared: Arc::default(),
            acceptor: None,
        }
    }

    /// Starts listening on the server's port (again, after `stop`).
    pub fn start(&mut self) {
        assert!(self.acceptor.is_none(), "already running");
        // std sets SO_REUSEADDR, so the port can be bound again while old sessions linger.
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .unwrap_or_else(|e| panic!("the SMTP server cannot listen on {}: {e}", self.port));
        self.shared.stopping.store(false, Ordering::SeqCst);
        let shared = self.shared.clone();
        self.acceptor = Some(std::thread::spawn(move || accept(listener, shared)));
    }

    /// Goes down: the port refuses connections and sessions in progress are cut.
    pub fn stop(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wakes the acceptor, which sees `stopping` and drops the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        acceptor.join().expect("the SMTP acceptor thread");
        for session in self.shared.sessions.lock().unwrap().drain(..) {
            let _ = session.shutdown(Shutdown::Both);
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The raw messages accepted so far, in order.
    pub fn messages(&self) -> Vec<String> {
        self.shared.messages.lock().unwrap().clone()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        if let Ok(handle) = stream.try_clone() {
            shared.sessions.lock().unwrap().push(handle);
        }
        let shared = shared.clone();
        std::thread::spawn(move || {
            // A session that breaks off (the server going down, a client timing out) just ends.
            let _ = session(stream, &shared);
        });
    }
}

/// One SMTP session. A message counts only once `250` answers the end of its data.
fn session(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    writer.write_all(b"220 localhost berth test SMTP server ready\r\n")?;
    let mut sender: Option<String> = None;
    let mut recipients = 0;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let command = line.trim_end_matches(['\r', '\n']);
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-localhost\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            "HELO" => b"250 localhost\r\n",
            "MAIL" => {
                sender = Some(command.to_owned());
                recipients = 0;
                b"250 OK\r\n"
            }
            "RCPT" if sender.is_some() => {
                recipients += 1;
                b"250 OK\r\n"
            }
            "RCPT" => b"503 MAIL first\r\n",
            "DATA" if recipients > 0 => {
                writer.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")?;
                let message = read_data(&mut reader)?;
                shared.messages.lock().unwrap().push(message);
                sender = None;
                recipients = 0;
                b"250 OK: queued\r\n"
            }
            "DATA" => b"503 RCPT first\r\n",
            "RSET" => {
                sender = None;
                recipients = 0;
                b"250 OK\r\n"
            }
            "NOOP" => b"250 OK\r\n",
            "QUIT" => {
                writer.write_all(b"221 Bye\r\n")?;
                return Ok(());
            }
            _ => b"502 Command not implemented\r\n",
        };
        writer.write_all(reply)?;
    }
}

/// The message after `DATA`, up to the line holding a single dot, with leading dots unstuffed.
fn read_data(reader: &mut impl BufRead) -> std::io::Result<String> {
    let mut message = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == ".\r\n" || line == ".\n" {
            return Ok(message);
        }
        message.push_str(line.strip_prefix('.').unwrap_or(&line));
    }
}
