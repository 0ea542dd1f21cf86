-- Back to users only: organizations' attempts go (their customers stay, in stripe_customers),
-- and user_id is the primary key again.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

delete from public.stripe_customer_creations where user_id is null;

alter table public.stripe_customer_creations
    drop constraint stripe_customer_creations_one_owner,
    drop constraint stripe_customer_creations_organization_id_key,
    drop constraint stripe_customer_creations_user_id_key,
    drop constraint stripe_customer_creations_pkey,
    drop column organization_id,
    drop column id,
    alter column user_id set not null,
    add constraint stripe_customer_creations_pkey primary key (user_id);
