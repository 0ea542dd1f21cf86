-- An organization's customer is created exactly once, as a user's is (docs/design.md
-- "Organizations"): its attempts are recorded here too, keyed by organization_id instead of
-- user_id. A row is one owner's: a user's or an organization's, never both.
--
-- The primary key moves from user_id to a surrogate id (user_id becomes nullable and stays
-- unique, so `on conflict (user_id)` works as before); organization_id is unique likewise. No
-- foreign key to the organizations table (it may not exist): an organization deleted leaves its
-- last attempt here, private to the backend, and a new organization never has its id.
--
-- The table holds one row per owner that ever created a customer: small, so the new column's
-- default and the indexes are written under the lock in moments.
-- squawk-ignore-file ban-drop-constraint, constraint-missing-not-valid, disallowed-unique-constraint, adding-field-with-default, ban-drop-not-null, adding-serial-primary-key-field

set local lock_timeout = '5s';
set local statement_timeout = '60s';

alter table public.stripe_customer_creations
    drop constraint stripe_customer_creations_pkey,
    add column id uuid not null default gen_random_uuid(),
    add column organization_id uuid,
    alter column user_id drop not null,
    add constraint stripe_customer_creations_pkey primary key (id),
    add constraint stripe_customer_creations_user_id_key unique (user_id),
    add constraint stripe_customer_creations_organization_id_key unique (organization_id),
    add constraint stripe_customer_creations_one_owner
        check (num_nonnulls(user_id, organization_id) = 1);

comment on column public.stripe_customer_creations.organization_id is
    'The organization whose customer this attempt creates (its Stripe idempotency key is organization:<id>:<attempt>); null for a user''s.';
