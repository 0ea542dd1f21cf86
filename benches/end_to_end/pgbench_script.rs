//! SQL rewriting: the service's own per-event statements as a pgbench script.

use stripe_customer_sync::store::customers::{INSERT_SQL, SNAPSHOT_SQL, UPDATE_SQL};

use crate::{PGBENCH_NEW_USER_BASE, PGBENCH_SEED_USER_BASE};

/// Replaces `$1`, `$2`, … of `sql` with what `arg` gives for each number.
fn bind_pgbench(sql: &str, arg: impl Fn(usize) -> String) -> String {
    let mut out = String::with_capacity(sql.len() * 2);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits = rest[at + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - at - 1);
        match rest[at + 1..at + 1 + digits].parse::<usize>() {
            Ok(n) => out.push_str(&arg(n)),
            Err(_) => out.push('$'),
        }
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    // pgbench reads a script line by line: no line may start with a backslash command by
    // accident, and blank lines inside a statement are fine.
    out
}

/// The service's per-event statements with pgbench variables for its parameters, each cast to
/// the type sqlx binds it as. Every 5th transaction of a client updates a pre-seeded customer
/// (snapshot read, then the compare-and-set update on the version it read); the others create a
/// new customer (snapshot read, then the insert). No BEGIN/COMMIT: the service runs none either
/// (each write is one statement: the row, its audit row and the ledger entry commit together).
pub fn pgbench_script_text() -> String {
    let uuid = |var: &str| format!("(lpad(to_hex((:{var})::bigint), 32, '0'))::uuid");
    let ledger = |n: usize, event_type: &str| -> String {
        match n {
            1 => "('evt_pgb' || :lvl || 'x' || :n)::text".into(),
            2 => format!("(:{event_type})::text"),
            3 => "(:livemode)::boolean".into(),
            4 => "(:apiver)::text".into(),
            5 => "(:created)::timestamptz".into(),
            6 => "(:payload)::text".into(),
            7 => "false".into(),
            8 => "(null)::text".into(),
            11 => "('c' || :n || '@example.com')::text".into(),
            12 => "(:cname)::text".into(),
            13 => "(:pm)::text".into(),
            14 => "(:meta)::jsonb".into(),
            15 => "(:s_version)::text".into(),
            // a user's customer: no organization
            16 => "(null)::uuid".into(),
            _ => unreachable!("${n}"),
        }
    };
    let new_customer = "('cus_pgb' || :lvl || 'x' || :n)::text";
    let seeded_customer = "('cus_pgbseed' || :k)::text";
    let snapshot_new = bind_pgbench(SNAPSHOT_SQL, |n| match n {
        2 => new_customer.into(),
        3 => uuid("u"),
        4 => "(null)::uuid".into(),
        n => ledger(n, "etype_c"),
    });
    let insert = bind_pgbench(INSERT_SQL, |n| match n {
        9 => new_customer.into(),
        10 => uuid("u"),
        // A time-ordered id, as the service's own (UUID version 7: milliseconds first).
        15 => "(lpad(to_hex((extract(epoch from clock_timestamp()) * 1000)::bigint), 12, '0') \
               || '7' || substr(md5(random()::text), 1, 19))::uuid"
            .into(),
        n => ledger(n, "etype_c"),
    });
    let snapshot_update = bind_pgbench(SNAPSHOT_SQL, |n| match n {
        2 => seeded_customer.into(),
        3 => uuid("uk"),
        4 => "(null)::uuid".into(),
        n => ledger(n, "etype_u"),
    });
    let update = bind_pgbench(UPDATE_SQL, |n| match n {
        9 => seeded_customer.into(),
        10 => uuid("uk"),
        n => ledger(n, "etype_u"),
    });
    format!(
        "\\set i :i + 1\n\
         \\set n :client_id * 1000000 + :i\n\
         \\if :i % 5 = 0\n\
         \\set k random(1, :seeds)\n\
         \\set uk {PGBENCH_SEED_USER_BASE} + :k\n\
         {snapshot_update} \\gset s_\n\
         {update};\n\
         \\else\n\
         \\set u {PGBENCH_NEW_USER_BASE} + :lvl * 1000000000 + :n\n\
         {snapshot_new};\n\
         {insert};\n\
         \\endif\n"
    )
}
