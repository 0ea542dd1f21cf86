//! Every request has a deadline for its head and its body: a client that sends the head of a
//! large POST and then nothing (or a byte now and then) is answered 408 and its connection
//! closed, instead of holding it as long as it likes. And `POST /customers` checks the token
//! before it waits for any body.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::stripe_double::StripeDouble;
use crate::helpers::tokens::user_token;
use crate::helpers::{
    TestApp, create_auth_user, migrated_database, spawn_app_with, spawn_app_with_customers,
};

/// Connects to the app and sends `request` as is (a head, perhaps a part of a body).
pub async fn send_raw(address: &str, request: &str) -> TcpStream {
    let host = address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).await.expect("connect");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// What the server sends until it closes the connection: the text, or `None` if it was still
/// open after `within`.
pub async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&received).into_owned())
}

/// The head of a POST announcing `length` bytes of JSON, and `extra` headers.
pub fn post_head(path: &str, length: usize, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\n{extra}\r\n"
    )
}

async fn app_with_deadlines(head: Duration, body: Duration) -> TestApp {
    spawn_app_with(migrated_database().await, |settings| {
        settings.http.head_timeout = head;
        settings.http.body_timeout = body;
    })
    .await
}

#[tokio::test]
async fn a_webhook_body_that_does_not_arrive_in_time_is_408_and_the_connection_is_closed() {
    let app = app_with_deadlines(Duration::from_secs(5), Duration::from_secs(1)).await;
    let request = post_head("/webhooks/stripe", 100_000, "") + "{";
    let mut stream = send_raw(&app.address, &request).await;

    let answer = read_until_closed(&mut stream, Duration::from_secs(30))
        .await
        .expect("the server closes the connection");

    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains(r#""code":"request_timeout""#),
        "the service's error body: {answer}"
    );
}

#[tokio::test]
async fn a_request_head_that_does_not_arrive_in_time_is_408_and_the_connection_is_closed() {
    let app = app_with_deadlines(Duration::from_secs(1), Duration::from_secs(30)).await;
    let started = Instant::now();
    let mut stream = send_raw(
        &app.address,
        "POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\n",
    )
    .await;

    let answer = read_until_closed(&mut stream, Duration::from_secs(30))
        .await
        .expect("the server closes the connection");

    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // REQUEST_HEAD_TIMEOUT, not actix' default of 5 s.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_customers_body_that_does_not_arrive_in_time_is_408_and_the_connection_is_closed() {
    let double = StripeDouble::start().await;
    let app = spawn_app_with_customers(&double, |settings| {
        settings.http.body_timeout = Duration::from_secs(1);
    })
    .await;
    let user = create_auth_user(&app.db.pool).await;
    let authorization = format!("Authorization: Bearer {}\r\n", user_token(user));
    let request = post_head("/customers", 100, &authorization) + "{";
    let mut stream = send_raw(&app.address, &request).await;

    let answer = read_until_closed(&mut stream, Duration::from_secs(30))
        .await
        .expect("the server closes the connection");

    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    assert!(double.api_requests().is_empty(), "no Stripe call");
}

#[tokio::test]
async fn post_customers_refuses_a_missing_or_bad_token_before_waiting_for_the_body() {
    let double = StripeDouble::start().await;
    let app = spawn_app_with_customers(&double, |settings| {
        settings.http.body_timeout = Duration::from_secs(60);
    })
    .await;
    for authorization in ["", "Authorization: Bearer not-a-token\r\n"] {
        // A body under the size limit is announced and never sent.
        let request = post_head("/customers", 100, authorization);
        let mut stream = send_raw(&app.address, &request).await;

        let answer = read_until_closed(&mut stream, Duration::from_secs(10)).await;

        let answer = answer.expect("answered without waiting for the body's 60 s deadline");
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        assert!(answer.contains(r#""code":"invalid_token""#), "{answer}");
    }
}

#[tokio::test]
async fn a_kept_alive_connection_whose_next_head_trickles_in_is_closed() {
    // actix' own head deadline covers a connection's first request only.
    let app = app_with_deadlines(Duration::from_secs(1), Duration::from_secs(1)).await;
    let mut stream = send_raw(&app.address, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut first = [0u8; 1024];
    let read = stream.read(&mut first).await.unwrap();
    assert!(first[..read].starts_with(b"HTTP/1.1 200"));

    // The next request's head, a byte a second.
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHo")
        .await
        .unwrap();
    let started = Instant::now();
    let closed = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if stream.write_all(b"x").await.is_err() {
            break true;
        }
        let mut buffer = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(10), stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => break true,
            _ if started.elapsed() > Duration::from_secs(30) => break false,
            _ => {}
        }
    };

    assert!(closed, "still open after {:?}", started.elapsed());
}
