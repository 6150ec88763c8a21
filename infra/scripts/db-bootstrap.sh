#!/usr/bin/env bash
# Gives the app's managed identity its PostgreSQL role and table rights. Idempotent: run it after
# every infrastructure deployment, before `meshpay migrate`.
#
#   infra/scripts/db-bootstrap.sh <app-role> <app-principal-id>
#
# <app-role>          the identity's name (deployment output appIdentityName); meshpay logs in as it (PGUSER)
# <app-principal-id>  its object id (output appIdentityPrincipalId)
#
# Runs as the server's Entra administrator group: PGUSER=<group display name>, PGPASSWORD=<Entra
# access token> (az account get-access-token --resource-type oss-rdbms), plus PGHOST, PGDATABASE.
#
# The app role is NOT an administrator: migrations run as the admin group, which owns the schema,
# and default privileges hand the app DML rights on every table the group creates, now or later.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 <app-role> <app-principal-id>" >&2
  exit 2
fi
app_role=$1
app_oid=$2
: "${PGHOST:?PGHOST is required}" "${PGDATABASE:?PGDATABASE is required}"
: "${PGUSER:?PGUSER (the admin group name) is required}" "${PGPASSWORD:?PGPASSWORD (an Entra token) is required}"
# The token is a bearer credential: verify the server certificate (libpq 16+ reads the system store).
export PGSSLMODE=${PGSSLMODE:-verify-full}
export PGSSLROOTCERT=${PGSSLROOTCERT:-system}

# Entra principals can only be created from the `postgres` database.
psql -X -q -v ON_ERROR_STOP=1 -d postgres -v role="$app_role" -v oid="$app_oid" <<'SQL'
SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') AS missing \gset
\if :missing
  SELECT * FROM pgaadauth_create_principal_with_oid(:'role', :'oid', 'service', false, false);
\endif
SQL

psql -X -q -v ON_ERROR_STOP=1 -v role="$app_role" -v owner="$PGUSER" -v db="$PGDATABASE" <<'SQL'
GRANT CONNECT ON DATABASE :"db" TO :"role";
GRANT USAGE ON SCHEMA public TO :"role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT USAGE, SELECT ON SEQUENCES TO :"role";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"role";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"role";
SQL

echo "db-bootstrap: role $app_role can use database $PGDATABASE (tables owned by $PGUSER)"
