-- Each page of stripe_customers keeps a tenth of its space free, for the rows' next versions.
--
-- Why: the service rewrites a customer's row for every event it applies, and most
-- customer.updated events change neither the email nor the user, so no indexed column.
-- PostgreSQL can then write the new version on the same page, with no new entry in any of the
-- table's four indexes (a heap-only, "HOT", update), but only if that page has room; at the
-- default fill factor of 100 inserts leave none, so an update of a row on a full page wrote
-- four index entries and, after each checkpoint, a full image of each index page it touched.
-- Measured on PostgreSQL 15 with benches/in_place_updates/run.sh (pgbench, one client, updates
-- of random rows' metadata through the real triggers, 1,000,000 rows, each run after a
-- CHECKPOINT): at fill factor 100, 16-58 % of such updates were heap-only and each wrote
-- 15.0 KB of WAL (median); at 90, all of them, 9.7 KB (0.65x). Updates per second at one client
-- barely moved (1.02x): the saving is in WAL, so in checkpoints and in index growth.
-- The cost: inserts fill pages to 90 %, so the table takes about a tenth more space.
--
-- Pages written from now on keep the room; existing ones gain it as their rows are updated
-- (or at once with VACUUM FULL, which locks the table: not done here). Setting the fill factor
-- takes only a SHARE UPDATE EXCLUSIVE lock: reads and writes go on.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

alter table public.stripe_customers set (fillfactor = 90);
