//! A plain-text SMTP server on 127.0.0.1 that answers `AUTH PLAIN` with a scripted reply code
//! and echoes what it received in its replies: the AUTH line and the credentials it decoded.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

pub struct SmtpEcho {
    pub addr: SocketAddr,
    logins: Arc<Mutex<Vec<String>>>,
}

impl SmtpEcho {
    /// Each login is answered with the next of `codes` (the last one repeats): `235` accepts it
    /// (and the message's final `250` then echoes the login), any other code refuses it with the
    /// echo.
    pub async fn start(codes: &[u16]) -> SmtpEcho {
        let codes = Arc::new(Mutex::new(codes.iter().copied().collect::<VecDeque<_>>()));
        let logins: Arc<Mutex<Vec<String>>> = Arc::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let record = logins.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(stream, codes.clone(), record.clone()));
            }
        });
        SmtpEcho { addr, logins }
    }

    /// The echo of each login received so far.
    pub fn echoes(&self) -> Vec<String> {
        self.logins.lock().unwrap().clone()
    }
}

fn next(codes: &Mutex<VecDeque<u16>>) -> u16 {
    let mut codes = codes.lock().unwrap();
    if codes.len() > 1 {
        codes.pop_front().unwrap()
    } else {
        codes.front().copied().unwrap_or(535)
    }
}

/// `AUTH PLAIN <b64>` as received, with the user and password it carries.
fn echo_login(line: &str) -> String {
    let b64 = line.split_whitespace().nth(2).unwrap_or("");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_default();
    let decoded = String::from_utf8_lossy(&decoded).into_owned();
    let mut fields = decoded.split('\0').skip(1);
    let (user, password) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""));
    let quoted = |s: &str| serde_json::to_string(s).unwrap();
    format!(
        "{line} user={} password={} raw: {user} {password}",
        quoted(user),
        quoted(password)
    )
}

async fn session(
    stream: TcpStream,
    codes: Arc<Mutex<VecDeque<u16>>>,
    logins: Arc<Mutex<Vec<String>>>,
) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut login = String::new();
    let _ = write.write_all(b"220 echo ESMTP\r\n").await;
    while let Ok(Some(line)) = lines.next_line().await {
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply = match verb.as_str() {
            "EHLO" | "HELO" => "250-echo\r\n250 AUTH PLAIN\r\n".to_string(),
            "AUTH" => {
                login = echo_login(&line);
                logins.lock().unwrap().push(login.clone());
                match next(&codes) {
                    235 => "235 2.7.0 accepted\r\n".to_string(),
                    code => format!("{code} {}.7.8 rejected: {login}\r\n", code / 100),
                }
            }
            "DATA" => {
                let _ = write.write_all(b"354 go ahead\r\n").await;
                while let Ok(Some(l)) = lines.next_line().await {
                    if l == "." {
                        break;
                    }
                }
                format!("250 2.0.0 queued for {login}\r\n")
            }
            "QUIT" => {
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            }
            _ => "250 ok\r\n".to_string(),
        };
        if write.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}
