//! Throughput of minipaas queues and streams on a real PostgreSQL, next to a plain
//! `FOR UPDATE SKIP LOCKED` table measured in the same run:
//!
//!     cargo run --release --example sql_bench -- --database-url postgres://user:pw@127.0.0.1/db
//!
//! Everything happens in a schema of its own (`minipaas_bench`, dropped at the end), so any
//! database the user may create schemas in will do. One client connection, autocommit: "single"
//! is one job or event per call, "batch" is 500 per call (100 per dequeue).

use std::time::Instant;

use postgres::{Client, NoTls};

const SINGLE: usize = 5_000;
const BATCH_TOTAL: usize = 50_000;
const BATCH: usize = 500;
const DEQUEUE_BATCH: i32 = 100;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .iter()
        .position(|a| a == "--database-url")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .unwrap_or_else(|| {
            eprintln!("usage: sql_bench --database-url postgres://user[:password]@host/db");
            std::process::exit(2)
        });
    let mut c = Client::connect(&url, NoTls).unwrap_or_else(|e| {
        eprintln!("cannot connect: {e}");
        std::process::exit(1)
    });
    c.batch_execute(
        "DROP SCHEMA IF EXISTS minipaas_bench CASCADE; CREATE SCHEMA minipaas_bench;
         SET search_path = minipaas_bench;",
    )
    .expect("create the bench schema");
    for m in minipaas::sql::migrations::MIGRATIONS {
        c.batch_execute(m.sql).expect("install the migrations");
    }
    c.batch_execute(
        "SET client_min_messages = warning;
         SELECT minipaas_queue_create('bench');
         SELECT minipaas_stream_create('bench_events');
         SELECT minipaas_stream_group_create('bench_events', 'reader');
         CREATE TABLE baseline (id bigserial PRIMARY KEY, payload jsonb NOT NULL, done boolean NOT NULL DEFAULT false);
         CREATE INDEX ON baseline (id) WHERE NOT done;",
    )
    .expect("create the bench queue, stream and baseline table");

    let payload = r#"{"to": "someone@example.org", "template": "welcome", "n": 1}"#;
    let batch_json = format!("[{}]", vec![payload; BATCH].join(","));
    let mut rows: Vec<(&str, f64, Option<f64>)> = Vec::new();

    let enqueue_single = rate(SINGLE, || {
        for _ in 0..SINGLE {
            c.execute(
                "SELECT minipaas_queue_enqueue('bench', $1::text::jsonb)",
                &[&payload],
            )
            .unwrap();
        }
    });
    let base_insert_single = rate(SINGLE, || {
        for _ in 0..SINGLE {
            c.execute(
                "INSERT INTO baseline (payload) VALUES ($1::text::jsonb)",
                &[&payload],
            )
            .unwrap();
        }
    });
    rows.push(("enqueue, single", enqueue_single, Some(base_insert_single)));

    let enqueue_batch = rate(BATCH_TOTAL, || {
        for _ in 0..BATCH_TOTAL / BATCH {
            c.execute(
                "SELECT count(*) FROM minipaas_queue_enqueue_many('bench', $1::text::jsonb)",
                &[&batch_json],
            )
            .unwrap();
        }
    });
    let base_insert_batch = rate(BATCH_TOTAL, || {
        for _ in 0..BATCH_TOTAL / BATCH {
            c.execute(
                "INSERT INTO baseline (payload) SELECT e FROM jsonb_array_elements($1::text::jsonb) e",
                &[&batch_json],
            )
            .unwrap();
        }
    });
    rows.push((
        "enqueue, batch of 500",
        enqueue_batch,
        Some(base_insert_batch),
    ));

    let dequeue_single = rate(SINGLE, || {
        for _ in 0..SINGLE {
            let r = c
                .query_one(
                    "SELECT id, lease::text FROM minipaas_queue_lease('bench', 1)",
                    &[],
                )
                .unwrap();
            let (id, lease): (i64, String) = (r.get(0), r.get(1));
            c.execute(
                "SELECT minipaas_queue_ack('bench', ARRAY[$1::bigint], $2::text::uuid)",
                &[&id, &lease],
            )
            .unwrap();
        }
    });
    let base_dequeue_single = rate(SINGLE, || {
        for _ in 0..SINGLE {
            let mut tx = c.transaction().unwrap();
            let ids: Vec<i64> = tx
                .query(
                    "SELECT id FROM baseline WHERE NOT done ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
                    &[],
                )
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            tx.execute(
                "UPDATE baseline SET done = true WHERE id = ANY($1)",
                &[&ids],
            )
            .unwrap();
            tx.commit().unwrap();
        }
    });
    rows.push((
        "dequeue+ack, single",
        dequeue_single,
        Some(base_dequeue_single),
    ));

    let left = BATCH_TOTAL;
    let dequeue_batch = rate(left, || {
        let mut n = 0;
        while n < left {
            let got = c
                .query(
                    "SELECT id, lease::text FROM minipaas_queue_lease('bench', $1)",
                    &[&DEQUEUE_BATCH],
                )
                .unwrap();
            let ids: Vec<i64> = got.iter().map(|r| r.get(0)).collect();
            let lease: String = got[0].get(1);
            c.execute(
                "SELECT count(*) FROM minipaas_queue_ack('bench', $1, $2::text::uuid)",
                &[&ids, &lease],
            )
            .unwrap();
            n += ids.len();
        }
    });
    let base_dequeue_batch = rate(left, || {
        let mut n = 0;
        while n < left {
            let mut tx = c.transaction().unwrap();
            let ids: Vec<i64> = tx
                .query(
                    "SELECT id FROM baseline WHERE NOT done ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                    &[&(DEQUEUE_BATCH as i64)],
                )
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            tx.execute(
                "UPDATE baseline SET done = true WHERE id = ANY($1)",
                &[&ids],
            )
            .unwrap();
            tx.commit().unwrap();
            n += ids.len();
        }
    });
    rows.push((
        "dequeue+ack, batch of 100",
        dequeue_batch,
        Some(base_dequeue_batch),
    ));

    let publish_single = rate(SINGLE, || {
        for _ in 0..SINGLE {
            c.execute(
                "SELECT minipaas_stream_publish('bench_events', $1::text::jsonb)",
                &[&payload],
            )
            .unwrap();
        }
    });
    rows.push(("publish, single", publish_single, None));
    let publish_batch = rate(BATCH_TOTAL, || {
        for _ in 0..BATCH_TOTAL / BATCH {
            c.execute(
                "SELECT minipaas_stream_publish_many('bench_events', $1::text::jsonb)",
                &[&batch_json],
            )
            .unwrap();
        }
    });
    rows.push(("publish, batch of 500", publish_batch, None));
    let total = SINGLE + BATCH_TOTAL;
    let consume = rate(total, || {
        let mut n = 0;
        while n < total {
            let got = c
                .query(
                    "SELECT id FROM minipaas_stream_read('bench_events', 'reader', 500)",
                    &[],
                )
                .unwrap();
            let last: i64 = got.last().expect("events are there").get(0);
            c.execute(
                "SELECT minipaas_stream_commit('bench_events', 'reader', $1)",
                &[&last],
            )
            .unwrap();
            n += got.len();
        }
    });
    rows.push(("consume+commit, batch of 500", consume, None));

    c.batch_execute("DROP SCHEMA minipaas_bench CASCADE")
        .expect("drop the bench schema");

    println!(
        "{:<30} {:>16} {:>22}",
        "operation", "minipaas jobs/s", "SKIP LOCKED table /s"
    );
    for (op, ours, base) in rows {
        let base = base.map_or_else(|| "-".to_string(), |b| format!("{b:.0}"));
        println!("{op:<30} {ours:>16.0} {base:>22}");
    }
}

/// Items per second of one run of `f` over `n` items.
fn rate(n: usize, f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    n as f64 / t.elapsed().as_secs_f64()
}
