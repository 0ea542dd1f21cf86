-- Reverts 20261205300000_catch_up_run_lease: runs lock with the advisory lock again (a run in
-- progress at the revert may overlap one started after it; both only apply what the ledger lacks).
set local lock_timeout = '5s';
set local statement_timeout = '60s';

drop table public.stripe_catch_up_lease;
