//! The SMTP mailer against a minimal SMTP server on a local socket: the reset email arrives
//! with its link.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

use stpt_http::{Mail, Mailer};
use stpt_server::SmtpMailer;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Accepts one SMTP session and returns the envelope and data it received.
async fn one_smtp_session(listener: TcpListener) -> (Vec<String>, String) {
    let (socket, _) = listener.accept().await.unwrap();
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 test ESMTP\r\n").await.unwrap();
    let mut envelope = Vec::new();
    let mut data = String::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" | "HELO" => write.write_all(b"250 test\r\n").await.unwrap(),
            "MAIL" | "RCPT" => {
                envelope.push(line.clone());
                write.write_all(b"250 ok\r\n").await.unwrap();
            }
            "DATA" => {
                write.write_all(b"354 go on\r\n").await.unwrap();
                while let Some(line) = lines.next_line().await.unwrap() {
                    if line == "." {
                        break;
                    }
                    data.push_str(&line);
                    data.push('\n');
                }
                write.write_all(b"250 queued\r\n").await.unwrap();
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await.unwrap();
                break;
            }
            _ => write.write_all(b"250 ok\r\n").await.unwrap(),
        }
    }
    (envelope, data)
}

#[tokio::test]
async fn reset_mail_goes_out_over_smtp() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(one_smtp_session(listener));
    let mailer = SmtpMailer::new(
        &format!("smtp://127.0.0.1:{port}"),
        "stpt <stpt@lab.example>",
    )
    .unwrap();
    mailer
        .send(Mail {
            to: "ada@lab.example".into(),
            subject: "Reset your stpt password".into(),
            body: "Open https://stpt.lab.example/reset/abc/ to choose a new password.\n".into(),
        })
        .await
        .unwrap();
    let (envelope, data) = server.await.unwrap();
    assert_eq!(
        envelope,
        ["MAIL FROM:<stpt@lab.example>", "RCPT TO:<ada@lab.example>"]
    );
    assert!(data.contains("Subject: Reset your stpt password"), "{data}");
    assert!(data.contains("To: ada@lab.example"), "{data}");
    assert!(
        data.contains("https://stpt.lab.example/reset/abc/"),
        "{data}"
    );
}

#[test]
fn bad_smtp_settings_are_clear_errors() {
    assert!(SmtpMailer::new("http://nope", "stpt@lab.example").is_err());
    assert!(SmtpMailer::new("smtp://127.0.0.1:25", "not an address").is_err());
}
