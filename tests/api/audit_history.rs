//! The audit trail writes each version once (an UPDATE only the columns that changed), and
//! `public.stripe_customers_history` rebuilds every version in full: checked against what the
//! table held after each of a random sequence of changes, also over audit rows in the earlier
//! whole-row shape.

use serde_json::Value;
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};

use crate::helpers::migrated_database;

/// A small deterministic generator (xorshift): the seed is printed, so a failure can be rerun.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

async fn row_of(pool: &PgPool, customer: &str) -> Option<Value> {
    sqlx::query_scalar(
        "select to_jsonb(c) from public.stripe_customers c where stripe_customer_id = $1",
    )
    .bind(customer)
    .fetch_optional(pool)
    .await
    .unwrap()
}

/// One random change to the customers' rows, by hand as an operator (or the service) would:
/// `expected` gets, per customer, the version each audit row stands for.
async fn change(pool: &PgPool, random: &mut Random, ids: &[&str], expected: &mut [Vec<Value>]) {
    let which = random.below(ids.len() as u64) as usize;
    let customer = ids[which];
    let before = row_of(pool, customer).await;
    let Some(before) = before else {
        sqlx::query(
            "insert into public.stripe_customers (stripe_customer_id, customer_email, customer_name)
             values ($1, $2, $3)",
        )
        .bind(customer)
        .bind(format!("{}@example.com", random.below(1000)))
        .bind(format!("name {}", random.below(1000)))
        .execute(pool)
        .await
        .unwrap();
        expected[which].push(row_of(pool, customer).await.unwrap());
        return;
    };
    match random.below(10) {
        0 => {
            sqlx::query("delete from public.stripe_customers where stripe_customer_id = $1")
                .bind(customer)
                .execute(pool)
                .await
                .unwrap();
            expected[which].push(before);
        }
        1 => {
            // One statement changes every customer that has a row.
            sqlx::query(
                "update public.stripe_customers
                    set customer_metadata = jsonb_set(customer_metadata, '{stripe}',
                                                      jsonb_build_object('plan', $1::text))",
            )
            .bind(format!("plan {}", random.below(5)))
            .execute(pool)
            .await
            .unwrap();
            for (n, id) in ids.iter().enumerate() {
                if let Some(row) = row_of(pool, id).await {
                    expected[n].push(row);
                }
            }
        }
        _ => {
            let email = random.below(2) == 0;
            let name = random.below(3) == 0;
            let card = random.below(3) == 0;
            sqlx::query(
                "update public.stripe_customers
                    set customer_email = case when $2 then $3 else customer_email end,
                        customer_name = case when $4 then $5 else customer_name end,
                        default_payment_method = case when $6 then $7 else default_payment_method end,
                        customer_metadata = jsonb_set(customer_metadata, '{sync}',
                            jsonb_build_object('last_event_id', $8::text))
                  where stripe_customer_id = $1",
            )
            .bind(customer)
            .bind(email)
            .bind(format!("{}@example.com", random.below(1000)))
            .bind(name)
            .bind((random.below(4) != 0).then(|| format!("name {}", random.below(1000))))
            .bind(card)
            .bind(format!("pm_{}", random.below(1000)))
            .bind(format!("evt_{}", random.below(1_000_000)))
            .execute(pool)
            .await
            .unwrap();
            expected[which].push(row_of(pool, customer).await.unwrap());
        }
    }
}

async fn history(pool: &PgPool, customer: &str) -> Vec<Value> {
    sqlx::query_scalar("select version from public.stripe_customers_history($1) order by audit_id")
        .bind(customer)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_history_rebuilt_from_the_audit_trail_equals_every_state_the_table_held() {
    let db = migrated_database().await;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed}");
    let mut random = Random(seed);
    let ids = ["cus_HistA", "cus_HistB", "cus_HistC"];
    let mut expected = vec![Vec::new(); ids.len()];
    for _ in 0..120 {
        change(&db.pool, &mut random, &ids, &mut expected).await;
    }
    for (n, id) in ids.iter().enumerate() {
        assert_eq!(
            history(&db.pool, id).await,
            expected[n],
            "{id}, seed {seed}"
        );
    }

    // An update's audit row holds only the old values of what changed (and updated_at, which
    // a trigger moves); neither it nor an insert's row copies the version after.
    let images: i64 = sqlx::query_scalar(
        "select count(*) from public.stripe_customers_audit
          where operation in ('INSERT', 'UPDATE') and new_row is not null",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(images, 0, "seed {seed}");
    let widest: i64 = sqlx::query_scalar(
        "select coalesce(max((select count(*) from jsonb_object_keys(old_row))), 0)
           from public.stripe_customers_audit where operation = 'UPDATE'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(
        widest <= 5,
        "an update row names {widest} columns, seed {seed}"
    );

    // Rows of the earlier shape (no row id, whole rows on both sides of an update) rebuild
    // alike: the first half of each customer's rows, written again as the earlier trigger
    // wrote them.
    for (n, id) in ids.iter().enumerate() {
        let audit: Vec<(i64, String)> = sqlx::query_as(
            "select id, operation from public.stripe_customers_audit
              where stripe_customer_id = $1 order by id",
        )
        .bind(id)
        .fetch_all(&db.pool)
        .await
        .unwrap();
        for (k, (audit_id, operation)) in audit.iter().enumerate().take(audit.len() / 2) {
            // Rows written before the trail named the row they belong to.
            sqlx::query(
                "update public.stripe_customers_audit set customer_row_id = null where id = $1",
            )
            .bind(audit_id)
            .execute(&db.pool)
            .await
            .unwrap();
            if operation != "UPDATE" || k == 0 {
                continue;
            }
            sqlx::query(
                "update public.stripe_customers_audit set old_row = $2, new_row = $3 where id = $1",
            )
            .bind(audit_id)
            .bind(&expected[n][k - 1])
            .bind(&expected[n][k])
            .execute(&db.pool)
            .await
            .unwrap();
        }
        assert_eq!(
            history(&db.pool, id).await,
            expected[n],
            "{id} mixed, seed {seed}"
        );
    }
}

/// The statistics of the audit trail: (sequential scans, index scans) so far, the scans of
/// `connection` included. Statistics reach the shared counters only when a session flushes them
/// (at most once a second unless forced), so the test keeps to this one session.
async fn audit_scans(connection: &mut PgConnection) -> (i64, i64) {
    sqlx::query("select pg_stat_force_next_flush()")
        .execute(&mut *connection)
        .await
        .unwrap();
    sqlx::query("select pg_stat_clear_snapshot()")
        .execute(&mut *connection)
        .await
        .unwrap();
    sqlx::query_as(
        "select seq_scan, coalesce(idx_scan, 0) from pg_stat_user_tables
          where relid = 'public.stripe_customers_audit'::regclass",
    )
    .fetch_one(&mut *connection)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_customers_history_is_found_through_indexes_without_reading_the_whole_trail() {
    let db = migrated_database().await;
    let mut connection = PgConnection::connect(&db.url).await.unwrap();
    // 20,000 customers with a row each in the trail, a quarter of them written before the trail
    // named rows (no row id), and one customer deleted and inserted again.
    for statement in [
        "insert into public.stripe_customers (stripe_customer_id, customer_email)
         select 'cus_Trail' || g, 'trail' || g || '@example.com' from generate_series(1, 20000) g",
        "update public.stripe_customers_audit set customer_row_id = null
          where stripe_customer_id like 'cus_Trail%' and id % 4 = 0",
        "update public.stripe_customers set customer_name = 'Ada' where stripe_customer_id = 'cus_Trail7'",
        "delete from public.stripe_customers where stripe_customer_id = 'cus_Trail7'",
        "insert into public.stripe_customers (stripe_customer_id, customer_email)
         values ('cus_Trail7', 'again@example.com')",
        "analyze public.stripe_customers, public.stripe_customers_audit",
    ] {
        sqlx::query(AssertSqlSafe(statement))
            .execute(&mut connection)
            .await
            .unwrap();
    }
    let legacy: String = sqlx::query_scalar(
        "select stripe_customer_id from public.stripe_customers_audit
          where customer_row_id is null order by id limit 1",
    )
    .fetch_one(&mut connection)
    .await
    .unwrap();
    let before = audit_scans(&mut connection).await;

    let seven: Vec<(String, Option<Value>)> = sqlx::query_as(
        "select operation, version from public.stripe_customers_history('cus_Trail7')
          order by audit_id",
    )
    .fetch_all(&mut connection)
    .await
    .unwrap();
    let earlier: Vec<String> = sqlx::query_scalar(
        "select operation from public.stripe_customers_history($1) order by audit_id",
    )
    .bind(&legacy)
    .fetch_all(&mut connection)
    .await
    .unwrap();
    let after = audit_scans(&mut connection).await;

    let operations: Vec<&str> = seven.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(operations, ["INSERT", "UPDATE", "DELETE", "INSERT"]);
    assert_eq!(
        seven[1].1.as_ref().unwrap()["customer_name"],
        "Ada",
        "the version after the update, before the deletion"
    );
    assert_eq!(earlier, ["INSERT"], "a row written before row ids is found");
    assert_eq!(
        after.0, before.0,
        "no sequential scan of the trail: {before:?} -> {after:?}"
    );
    assert!(after.1 > before.1, "the trail's indexes were used");
}
