//! Decoding a verified event: `stripe::event::decode` on a 2 KB `customer.created` (the 2024-06-20
//! fixture, padded) and on the 3.3 KB `customer.updated` fixture (with `previous_attributes`).
//!
//! `cargo bench --bench decode`; after divan's table, a median of timed batches in µs per event.

use std::hint::black_box;
use std::time::Instant;

use divan::Bencher;
use stripe_customer_sync::stripe::event::{EventObject, decode};

fn created_2kb() -> String {
    let fixture = include_str!("../fixtures/2024-06-20/01_customer.created.json");
    let with_description = fixture.replacen("\"description\": null", "\"description\": \"\"", 1);
    let pad = 2048usize.saturating_sub(with_description.len());
    with_description.replacen(
        "\"description\": \"\"",
        &format!("\"description\": \"{}\"", "x".repeat(pad)),
        1,
    )
}

const UPDATED: &str = include_str!("../fixtures/2024-06-20/02_customer.updated.json");

fn decode_customer(body: &[u8]) -> usize {
    let event = decode(black_box(body)).unwrap();
    let EventObject::Customer(customer) = event.object else {
        panic!("not a customer event")
    };
    customer.metadata.len()
}

#[divan::bench]
fn customer_created_2kb(bencher: Bencher) {
    let body = created_2kb();
    assert_eq!(body.len(), 2048);
    bencher
        .counter(divan::counter::BytesCount::new(body.len()))
        .bench(|| decode_customer(body.as_bytes()));
}

#[divan::bench]
fn customer_updated_3kb(bencher: Bencher) {
    bencher
        .counter(divan::counter::BytesCount::new(UPDATED.len()))
        .bench(|| decode_customer(UPDATED.as_bytes()));
}

fn main() {
    divan::main();
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    println!("\nµs per decoded event (median of 41 timed batches of 2,000):");
    for (name, body) in [
        ("customer.created, 2048 bytes", created_2kb()),
        ("customer.updated, 3.3 KB", UPDATED.to_owned()),
    ] {
        const BATCH: u32 = 2_000;
        let mut batches: Vec<f64> = (0..41)
            .map(|_| {
                let started = Instant::now();
                for _ in 0..BATCH {
                    black_box(decode_customer(body.as_bytes()));
                }
                started.elapsed().as_secs_f64() * 1e6 / f64::from(BATCH)
            })
            .collect();
        batches.sort_by(f64::total_cmp);
        let micros = batches[batches.len() / 2];
        println!("  {name:<30} {micros:.2} µs/op");
    }
}
