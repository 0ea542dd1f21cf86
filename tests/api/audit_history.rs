//! The audit trail writes each version once (an UPDATE only the columns that changed), and
//! `public.stripe_customers_history` rebuilds every version in full: checked against what the
//! table held after each of a random sequence of changes, also over audit rows in the earlier
//! whole-row shape.

use serde_json::Value;
use sqlx::PgPool;

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

    // Rows of the earlier shape (whole rows on both sides of an update) rebuild alike: the
    // first half of each customer's updates, written again as the earlier trigger wrote them.
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
