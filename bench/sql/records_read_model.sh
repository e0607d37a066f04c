#!/usr/bin/env bash
# The read-model choice of issue 19 (item 4), measured in PostgreSQL alone: W11's list
# (status=paid&total__gte=100&sort=-created_at&limit=50, ~10 % selectivity) over 100,000 records of
# one entity, on (a) the `rm.records` jsonb table with its entity index, (a+) the same with an
# expression index on the filtered and sorted keys, and (b) a typed table for the entity with a
# btree index. The statements are those `read_model::records::list` builds (a) and its typed
# equivalent (b); each runs prepared on one connection for SECONDS; p50/p99 from pgbench's
# per-statement log. Usage: bench/sql/records_read_model.sh [records] [seconds]
# Needs psql and pgbench; PGHOST/PGUSER as for the suite (default 127.0.0.1, postgres).
set -euo pipefail
N=${1:-100000}
SECONDS_EACH=${2:-10}
export PGHOST=${PGHOST:-127.0.0.1} PGUSER=${PGUSER:-postgres}
DB=bench_read_model_$$
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"; dropdb --if-exists "$DB" >/dev/null 2>&1 || true' EXIT
createdb "$DB"
P=11111111-1111-1111-1111-111111111111
F=22222222-2222-2222-2222-222222222222
OTHER=33333333-3333-3333-3333-333333333333
psql -q -v ON_ERROR_STOP=1 -d "$DB" <<SQL
-- (a) the rm.records shape (read-model/src/tables.rs), its entity index, the same values as
-- the bench's W11 records (bench/src/suite/records.rs, fn record), plus as many rows of another
-- entity in the same table.
CREATE TABLE records (
    id uuid PRIMARY KEY, project_id uuid NOT NULL, feature_id uuid NOT NULL,
    version bigint NOT NULL, created_by uuid NOT NULL, created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL, data jsonb NOT NULL);
CREATE INDEX records_entity_idx ON records (project_id, feature_id, created_at, id);
INSERT INTO records
SELECT gen_random_uuid(), '$P', f, 1, '$P', t, t,
       jsonb_build_object(
         'number', 'N-' || n, 'quantity', n % 100,
         'total', to_char(((n::bigint * 7919 / 5) % 20000) / 100.0, 'FM99990.00'),
         'status', (ARRAY['new','paid','shipped','void','refunded'])[n % 5 + 1],
         'placed_at', '2026-01-01T00:00:00Z')
FROM generate_series(0, $N - 1) n,
     LATERAL (VALUES ('$F'::uuid), ('$OTHER'::uuid)) v(f),
     LATERAL (SELECT timestamptz '2026-01-01' + n * interval '10 ms' AS t) c;
-- (b) a typed table for the entity.
CREATE TABLE sales (
    id uuid PRIMARY KEY, version bigint NOT NULL, created_by uuid NOT NULL,
    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
    number text NOT NULL, quantity bigint, total numeric(10, 2), status text NOT NULL,
    placed_at timestamptz);
INSERT INTO sales
SELECT id, version, created_by, created_at, updated_at, data->>'number',
       (data->>'quantity')::bigint, (data->>'total')::numeric, data->>'status',
       (data->>'placed_at')::timestamptz
FROM records WHERE feature_id = '$F';
CREATE INDEX sales_status_created_idx ON sales (status, created_at DESC, id DESC);
VACUUM ANALYZE;
SQL
echo "records: $(psql -Atd "$DB" -c "SELECT count(*) FROM records WHERE feature_id = '$F'") of the entity, $(psql -Atd "$DB" -c "SELECT count(*) FROM records") in the table; matching: $(psql -Atd "$DB" -c "SELECT count(*) FROM sales WHERE status = 'paid' AND total >= 100")"

A="SELECT id, version, created_at, updated_at, data, (created_at)::text AS bf_sort_key_0 FROM records WHERE project_id = '$P' AND feature_id = '$F' AND (((data->'status') #>> '{}') COLLATE \"C\") = 'paid'::text AND (((data->'total') #>> '{}'))::numeric >= '100'::text::numeric ORDER BY created_at DESC, id DESC LIMIT 51;"
B="SELECT id, version, created_at, updated_at, number, quantity, total, status, placed_at FROM sales WHERE status = 'paid' AND total >= '100'::text::numeric ORDER BY created_at DESC, id DESC LIMIT 51;"

run() { # name statement
    echo "$2" >"$WORK/q.sql"
    local rows
    rows=$(psql -Atd "$DB" -c "${2%;}" | wc -l)
    (cd "$WORK" && pgbench -n -M prepared -c 1 -T "$SECONDS_EACH" -f q.sql -l --log-prefix="$1" "$DB" >/dev/null 2>&1)
    cat "$WORK/$1".* | awk '{print $3}' | sort -n >"$WORK/$1.sorted"
    local count p50 p99
    count=$(wc -l <"$WORK/$1.sorted")
    p50=$(awk -v n="$count" 'NR == int(n * 0.50) + 1 {printf "%.2f", $1 / 1000}' "$WORK/$1.sorted")
    p99=$(awk -v n="$count" 'NR == int(n * 0.99) + 1 {printf "%.2f", $1 / 1000}' "$WORK/$1.sorted")
    printf '%-40s rows %3d  runs %6d  p50 %7s ms  p99 %7s ms  %s\n' "$1" "$rows" "$count" "$p50" "$p99" \
        "$(psql -Atd "$DB" -c "EXPLAIN ${2%;}" | head -3 | tr -s ' ' | paste -sd '|')"
}
run a_jsonb_entity_index "$A"
psql -q -d "$DB" -c "CREATE INDEX records_w11_idx ON records (project_id, feature_id, (((data->'status') #>> '{}') COLLATE \"C\"), created_at DESC, id DESC); ANALYZE records;"
run a_jsonb_expression_index "$A"
run b_typed_btree "$B"
