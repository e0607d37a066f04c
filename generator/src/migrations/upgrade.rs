//! The migration that takes a database from a base generation's model to this generation's: new
//! tables, added, altered and dropped columns, constraints and indexes (Alembic batch mode, so it
//! runs on SQLite as on PostgreSQL), data-safe (back-fills before NOT NULL, refuses before any
//! change when rows cannot be carried over).

use std::fmt::Write as _;

use super::model::{Check, Column, DbModel, ForeignKey, Named, Table};

use crate::escape::python_str_formatted as python_str;

/// The column every owned row carries; existing rows get `-x default_owner=<user id>`.
pub const OWNER_COLUMN: &str = "owner_id";

/// The migration module from `base` to `new`, as revision `revision` after `base.alembic_head`.
pub fn upgrade(base: &DbModel, new: &DbModel, revision: &str) -> String {
    let up = steps(base, new);
    let down = steps(new, base);
    format!(
        "\"\"\"Upgrades the schema of revision {down_rev} to this generation's model (computed by Backforge\n\
         from the two generations' `backforge/model.json`).\n\n\
         Existing rows of a table that gains an owner get the user given as\n\
         `alembic -x default_owner=<user id> upgrade head`; without one the upgrade refuses to start.\n\n\
         Revision ID: {revision}\nRevises: {down_rev}\n\"\"\"\n\n\
         import uuid\n\
         from collections.abc import Sequence\n\n\
         import sqlalchemy as sa\n\
         from alembic import context, op\n\n\
         revision: str = {rev_lit}\n\
         down_revision: str | None = {down_lit}\n\
         branch_labels: str | Sequence[str] | None = None\n\
         depends_on: str | Sequence[str] | None = None\n\n\n\
         class UpgradeRefused(Exception):\n    \
         \"\"\"The database holds rows this migration cannot carry over without help.\"\"\"\n\n\n\
         def _exists(sql: str, **params: object) -> bool:\n    \
         return op.get_bind().execute(sa.text(sql), params).first() is not None\n\n\n\
         def _has_rows(table: str) -> bool:\n    \
         return _exists(f'SELECT 1 FROM \"{{table}}\"')\n\n\n\
         def _has_nulls(table: str, column: str) -> bool:\n    \
         return _exists(f'SELECT 1 FROM \"{{table}}\" WHERE \"{{column}}\" IS NULL')\n\n\n\
         def _default_owner(users: str) -> uuid.UUID:\n    \
         \"\"\"The user `-x default_owner=<user id>` names, who must exist.\"\"\"\n    \
         text = context.get_x_argument(as_dictionary=True).get(\"default_owner\")\n    \
         if not text:\n        \
         raise UpgradeRefused(\n            \
         \"existing rows need an owner: run alembic -x default_owner=<user id> upgrade head\"\n        \
         )\n    \
         try:\n        \
         owner = uuid.UUID(text)\n    \
         except ValueError:\n        \
         raise UpgradeRefused(\"default_owner is not a user id (a UUID)\") from None\n    \
         query = sa.text(f'SELECT 1 FROM \"{{users}}\" WHERE \"id\" = :id').bindparams(\n        \
         sa.bindparam(\"id\", owner, type_=sa.Uuid())\n    \
         )\n    \
         if op.get_bind().execute(query).first() is None:\n        \
         raise UpgradeRefused(f\"default_owner {{owner}} is not a user of this database\")\n    \
         return owner\n\n\n\
         def _fill_owner(table: str, owner: uuid.UUID) -> None:\n    \
         op.get_bind().execute(\n        \
         sa.text(f'UPDATE \"{{table}}\" SET \"owner_id\" = :owner WHERE \"owner_id\" IS NULL').bindparams(\n            \
         sa.bindparam(\"owner\", owner, type_=sa.Uuid())\n        \
         )\n    \
         )\n\n\n\
         def upgrade() -> None:\n{up}\n\n\
         def downgrade() -> None:\n{down}",
        down_rev = base.alembic_head,
        rev_lit = python_str(revision),
        down_lit = python_str(&base.alembic_head),
    )
}

/// A column's definition as `sa.Column(...)`.
fn column(c: &Column) -> String {
    let default = c
        .server_default
        .as_ref()
        .map(|d| format!(", server_default=sa.text({})", python_str(d)))
        .unwrap_or_default();
    format!(
        "sa.Column({}, {}, nullable={}{default})",
        python_str(&c.name),
        c.sa_type,
        py_bool(c.nullable)
    )
}

fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

fn strs(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| python_str(s)).collect();
    format!("[{}]", items.join(", "))
}

fn fk_args(fk: &ForeignKey) -> String {
    let ondelete = fk
        .ondelete
        .as_ref()
        .map(|o| format!(", ondelete={}", python_str(o)))
        .unwrap_or_default();
    format!(
        "{}, {}, {}, {}{ondelete}",
        python_str(&fk.name),
        python_str(&fk.referred_table),
        strs(&fk.columns),
        strs(&fk.referred_columns)
    )
}

/// The body of `upgrade()` (or, with the models swapped, `downgrade()`).
fn steps(from: &DbModel, to: &DbModel) -> String {
    let users_table = to
        .tables
        .iter()
        .flat_map(|t| &t.foreign_keys)
        .find(|fk| fk.columns == [OWNER_COLUMN])
        .map(|fk| fk.referred_table.clone());
    let mut checks = String::new();
    let mut create = String::new();
    let mut before = String::new();
    let mut fill = String::new();
    let mut after = String::new();
    let mut drop = String::new();
    let mut late_fks = String::new();
    let mut owner_needed = Vec::new();

    // New tables, in the new model's creation order; keys to tables created later are added
    // once every table exists (SQLite takes them inline).
    let created: Vec<&Table> = to
        .tables
        .iter()
        .filter(|t| from.table(&t.name).is_none())
        .collect();
    for (position, table) in created.iter().enumerate() {
        let name = python_str(&table.name);
        let _ = writeln!(create, "    op.create_table(\n        {name},");
        for c in &table.columns {
            let _ = writeln!(create, "        {},", column(c));
        }
        let _ = writeln!(
            create,
            "        sa.PrimaryKeyConstraint({}, name={}),",
            strs(&table.primary_key.columns)
                .trim_start_matches('[')
                .trim_end_matches(']'),
            python_str(&table.primary_key.name)
        );
        for u in &table.uniques {
            let _ = writeln!(
                create,
                "        sa.UniqueConstraint({}, name={}),",
                strs(&u.columns)
                    .trim_start_matches('[')
                    .trim_end_matches(']'),
                python_str(&u.name)
            );
        }
        for c in &table.checks {
            let _ = writeln!(
                create,
                "        sa.CheckConstraint({}, name={}),",
                python_str(&c.sql),
                python_str(&c.name)
            );
        }
        let mut sqlite_only = Vec::new();
        for fk in &table.foreign_keys {
            let targets: Vec<String> = fk
                .referred_columns
                .iter()
                .map(|c| format!("{}.{c}", fk.referred_table))
                .collect();
            let inline = format!(
                "sa.ForeignKeyConstraint({}, {}, name={}{})",
                strs(&fk.columns),
                strs(&targets),
                python_str(&fk.name),
                fk.ondelete
                    .as_ref()
                    .map(|o| format!(", ondelete={}", python_str(o)))
                    .unwrap_or_default()
            );
            let later = created[position + 1..]
                .iter()
                .any(|t| t.name == fk.referred_table);
            if later {
                sqlite_only.push(inline);
                let _ = writeln!(
                    late_fks,
                    "    if not sqlite:\n        op.create_foreign_key({})",
                    fk_args_for(&table.name, fk)
                );
            } else {
                let _ = writeln!(create, "        {inline},");
            }
        }
        if !sqlite_only.is_empty() {
            create.push_str(&crate::python_fastapi::sqlite_only(8, &sqlite_only));
        }
        create.push_str("    )\n");
        for ix in &table.indexes {
            let _ = writeln!(
                create,
                "    op.create_index({}, {name}, {})",
                python_str(&ix.name),
                strs(&ix.columns)
            );
        }
    }
    // Keys added late are the only statements that ask for the dialect.
    let asks_dialect = !late_fks.is_empty();
    create.push_str(&late_fks);

    // Tables in both models.
    for table in &to.tables {
        let Some(old) = from.table(&table.name) else {
            continue;
        };
        let name = python_str(&table.name);
        let mut a = String::new();
        let mut b = String::new();
        let changed_named = |old: &[Named], new: &[Named]| -> (Vec<Named>, Vec<Named>) {
            let gone = old.iter().filter(|o| !new.contains(o)).cloned().collect();
            let came = new.iter().filter(|n| !old.contains(n)).cloned().collect();
            (gone, came)
        };
        let (gone_ix, new_ix) = changed_named(&old.indexes, &table.indexes);
        let (gone_uq, new_uq) = changed_named(&old.uniques, &table.uniques);
        let gone_ck: Vec<&Check> = old
            .checks
            .iter()
            .filter(|c| !table.checks.contains(c))
            .collect();
        let new_ck: Vec<&Check> = table
            .checks
            .iter()
            .filter(|c| !old.checks.contains(c))
            .collect();
        let gone_fk: Vec<&ForeignKey> = old
            .foreign_keys
            .iter()
            .filter(|k| !table.foreign_keys.contains(k))
            .collect();
        let new_fk: Vec<&ForeignKey> = table
            .foreign_keys
            .iter()
            .filter(|k| !old.foreign_keys.contains(k))
            .collect();
        for ix in &gone_ix {
            let _ = writeln!(a, "        batch.drop_index({})", python_str(&ix.name));
        }
        for uq in &gone_uq {
            let _ = writeln!(
                a,
                "        batch.drop_constraint({}, type_=\"unique\")",
                python_str(&uq.name)
            );
        }
        for ck in &gone_ck {
            let _ = writeln!(
                a,
                "        batch.drop_constraint({}, type_=\"check\")",
                python_str(&ck.name)
            );
        }
        for fk in &gone_fk {
            let _ = writeln!(
                a,
                "        batch.drop_constraint({}, type_=\"foreignkey\")",
                python_str(&fk.name)
            );
        }
        for c in &old.columns {
            if table.column(&c.name).is_none() {
                let _ = writeln!(a, "        batch.drop_column({})", python_str(&c.name));
            }
        }
        let table_name = python_str(&table.name);
        for c in &table.columns {
            let column_name = python_str(&c.name);
            match old.column(&c.name) {
                None => {
                    // NOT NULL without a server default: added nullable, filled, then tightened.
                    let tighten = !c.nullable && c.server_default.is_none();
                    let added = Column {
                        nullable: c.nullable || tighten,
                        ..c.clone()
                    };
                    let _ = writeln!(a, "        batch.add_column({})", column(&added));
                    if tighten {
                        if c.name == OWNER_COLUMN {
                            owner_needed.push(table.name.clone());
                            let _ = writeln!(
                                fill,
                                "    if owner is not None:\n        _fill_owner({table_name}, owner)"
                            );
                        } else {
                            let _ = writeln!(
                                checks,
                                "    if _has_rows({table_name}):\n        raise UpgradeRefused(\n            \
                                 {}\n        )",
                                python_str(&format!(
                                    "table {} has rows and its new column {} is required without a default",
                                    table.name, c.name
                                ))
                            );
                        }
                        let _ = writeln!(
                            b,
                            "        batch.alter_column({column_name}, existing_type={}, nullable=False)",
                            c.sa_type
                        );
                    }
                }
                Some(o) => {
                    let mut changes = Vec::new();
                    if o.sa_type != c.sa_type {
                        changes.push(format!("type_={}", c.sa_type));
                    }
                    if o.server_default != c.server_default {
                        changes.push(match &c.server_default {
                            Some(d) => format!("server_default=sa.text({})", python_str(d)),
                            None => "server_default=None".into(),
                        });
                    }
                    if c.nullable && !o.nullable {
                        changes.push("nullable=True".into());
                    }
                    if !changes.is_empty() {
                        let _ = writeln!(
                            a,
                            "        batch.alter_column({column_name}, existing_type={}, {})",
                            o.sa_type,
                            changes.join(", ")
                        );
                    }
                    if !c.nullable && o.nullable {
                        match &c.server_default {
                            Some(d) => {
                                let _ = writeln!(
                                    fill,
                                    "    op.execute({})",
                                    python_str(&format!(
                                        "UPDATE \"{}\" SET \"{}\" = {d} WHERE \"{}\" IS NULL",
                                        table.name, c.name, c.name
                                    ))
                                );
                            }
                            None if c.name == OWNER_COLUMN => {
                                owner_needed.push(table.name.clone());
                                let _ = writeln!(
                                    fill,
                                    "    if owner is not None:\n        _fill_owner({table_name}, owner)"
                                );
                            }
                            None => {
                                let _ = writeln!(
                                    checks,
                                    "    if _has_nulls({table_name}, {column_name}):\n        raise UpgradeRefused(\n            \
                                     {}\n        )",
                                    python_str(&format!(
                                        "column {}.{} is now required and has nulls but no default",
                                        table.name, c.name
                                    ))
                                );
                            }
                        }
                        let _ = writeln!(
                            b,
                            "        batch.alter_column({column_name}, existing_type={}, nullable=False)",
                            c.sa_type
                        );
                    }
                }
            }
        }
        if old.primary_key != table.primary_key {
            let _ = writeln!(
                a,
                "        batch.drop_constraint({}, type_=\"primary\")",
                python_str(&old.primary_key.name)
            );
            let _ = writeln!(
                b,
                "        batch.create_primary_key({}, {})",
                python_str(&table.primary_key.name),
                strs(&table.primary_key.columns)
            );
        }
        for uq in &new_uq {
            let _ = writeln!(
                b,
                "        batch.create_unique_constraint({}, {})",
                python_str(&uq.name),
                strs(&uq.columns)
            );
            // Columns added here hold one value on every existing row (their default or the
            // owner), so duplicates are those of the columns the table had; nulls never clash.
            let existing: Vec<&String> = uq
                .columns
                .iter()
                .filter(|c| old.column(c).is_some())
                .collect();
            if !existing.is_empty() {
                let quoted: Vec<String> = existing.iter().map(|c| format!("\"{c}\"")).collect();
                let not_null: Vec<String> =
                    quoted.iter().map(|c| format!("{c} IS NOT NULL")).collect();
                let sql = format!(
                    "SELECT 1 FROM \"{}\" WHERE {} GROUP BY {} HAVING COUNT(*) > 1",
                    table.name,
                    not_null.join(" AND "),
                    quoted.join(", ")
                );
                let message = format!(
                    "rows of table {} repeat a value of ({}), which are unique now",
                    table.name,
                    uq.columns.join(", ")
                );
                let _ = writeln!(
                    checks,
                    "    if _exists({}):\n        raise UpgradeRefused({})",
                    python_str(&sql),
                    python_str(&message)
                );
            }
        }
        for ck in &new_ck {
            let _ = writeln!(
                b,
                "        batch.create_check_constraint({}, sa.text({}))",
                python_str(&ck.name),
                python_str(&ck.sql)
            );
            // A rule on columns the table had: rows that break it stop the upgrade up front.
            if quoted_names(&ck.sql).all(|c| old.column(c).is_some()) {
                let sql = format!("SELECT 1 FROM \"{}\" WHERE NOT ({})", table.name, ck.sql);
                let message = format!(
                    "rows of table {} break the new rule {}",
                    table.name, ck.name
                );
                let _ = writeln!(
                    checks,
                    "    if _exists({}):\n        raise UpgradeRefused({})",
                    python_str(&sql),
                    python_str(&message)
                );
            }
        }
        for fk in &new_fk {
            let ondelete = fk
                .ondelete
                .as_ref()
                .map(|o| format!(", ondelete={}", python_str(o)))
                .unwrap_or_default();
            let _ = writeln!(
                b,
                "        batch.create_foreign_key({}, {}, {}, {}{ondelete})",
                python_str(&fk.name),
                python_str(&fk.referred_table),
                strs(&fk.columns),
                strs(&fk.referred_columns)
            );
        }
        for ix in &new_ix {
            let _ = writeln!(
                b,
                "        batch.create_index({}, {})",
                python_str(&ix.name),
                strs(&ix.columns)
            );
        }
        if !a.is_empty() {
            let _ = write!(
                before,
                "    with op.batch_alter_table({name}) as batch:\n{a}"
            );
        }
        if !b.is_empty() {
            let _ = write!(
                after,
                "    with op.batch_alter_table({name}) as batch:\n{b}"
            );
        }
    }

    // Tables only the old model has, in reverse creation order.
    for table in from.tables.iter().rev() {
        if to.table(&table.name).is_none() {
            let _ = writeln!(drop, "    op.drop_table({})", python_str(&table.name));
        }
    }

    let mut out = String::new();
    if asks_dialect {
        out.push_str("    sqlite = op.get_bind().dialect.name == \"sqlite\"\n");
    }
    // Every refusal comes before the first change: SQLite runs DDL outside a transaction.
    out.push_str(&checks);
    if !owner_needed.is_empty() {
        let users = users_table.as_deref().unwrap_or("users");
        let _ = writeln!(
            out,
            "    owner = None\n    if any(_has_rows(t) for t in {}):\n        owner = _default_owner({})",
            crate::python_fastapi::py_str_tuple(&owner_needed),
            python_str(users)
        );
    }
    out.push_str(&create);
    out.push_str(&before);
    out.push_str(&fill);
    out.push_str(&after);
    out.push_str(&drop);
    if out.is_empty() {
        out.push_str("    pass\n");
    }
    out
}

fn fk_args_for(table: &str, fk: &ForeignKey) -> String {
    let args = fk_args(fk);
    // `name, referent, ...` becomes `name, source, referent, ...`.
    match args.split_once(", ") {
        Some((name, rest)) => format!("{name}, {}, {rest}", python_str(table)),
        None => args,
    }
}

/// The double-quoted identifiers of a CHECK's SQL (the columns it reads).
fn quoted_names(sql: &str) -> impl Iterator<Item = &str> {
    sql.split('"').skip(1).step_by(2)
}
