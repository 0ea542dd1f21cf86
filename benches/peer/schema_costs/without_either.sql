-- Both: the audit trail's triggers off and the CHECK constraints dropped (see the two files).
\ir without_audit_trigger.sql
\ir without_checks.sql
