//! `alembic/versions/0001_initial.py`: the whole schema in one migration, with the same names as
//! the models, so `alembic revision --autogenerate` starts from a clean diff.

use std::fmt::Write as _;

use super::app::{column_type, server_default, table_names};
use super::plan::{FILES_TABLE, Plan, REFRESH_TABLE, USERS_TABLE};
use crate::escape::python_str_formatted as python_str;

pub fn initial(plan: &mut Plan<'_>) -> String {
    let mut up = String::new();
    let mut down = String::new();
    let deferred = !plan.deferred_fks.is_empty();
    if deferred {
        up.push_str(
            "    # Some references form a cycle through optional fields. SQLite takes foreign keys only\n    \
             # inside CREATE TABLE (and accepts forward ones there); PostgreSQL adds them at the end.\n    \
             sqlite = op.get_bind().dialect.name == \"sqlite\"\n",
        );
        down.push_str("    sqlite = op.get_bind().dialect.name == \"sqlite\"\n");
    }

    if !plan.auth.is_empty() {
        let pk = plan.names.constraint("pk", USERS_TABLE, &[]);
        let uq = plan.names.constraint("uq", USERS_TABLE, &["email"]);
        let _ = write!(
            up,
            "    op.create_table(\n        {},\n        \
             sa.Column(\"id\", sa.Uuid(), nullable=False),\n        \
             sa.Column(\"email\", sa.String(254), nullable=False),\n        \
             sa.Column(\"password_hash\", sa.String(255), nullable=False),\n        \
             sa.Column(\"is_admin\", sa.Boolean(), nullable=False, server_default=sa.text(\"'0'\")),\n        \
             sa.Column(\"created_at\", sa.DateTime(timezone=True), nullable=False),\n        \
             sa.PrimaryKeyConstraint(\"id\", name={}),\n        \
             sa.UniqueConstraint(\"email\", name={}),\n    )\n",
            python_str(USERS_TABLE),
            python_str(&pk),
            python_str(&uq)
        );
        let pk = plan.names.constraint("pk", REFRESH_TABLE, &[]);
        let uq = plan.names.constraint("uq", REFRESH_TABLE, &["token_hash"]);
        let fk = plan.names.constraint("fk", REFRESH_TABLE, &["user_id"]);
        let ix = plan.names.constraint("ix", REFRESH_TABLE, &["family_id"]);
        let _ = write!(
            up,
            "    op.create_table(\n        {},\n        \
             sa.Column(\"id\", sa.Uuid(), nullable=False),\n        \
             sa.Column(\"user_id\", sa.Uuid(), nullable=False),\n        \
             sa.Column(\"family_id\", sa.Uuid(), nullable=False),\n        \
             sa.Column(\"token_hash\", sa.String(64), nullable=False),\n        \
             sa.Column(\"expires_at\", sa.DateTime(timezone=True), nullable=False),\n        \
             sa.Column(\"spent_at\", sa.DateTime(timezone=True), nullable=True),\n        \
             sa.Column(\"revoked_at\", sa.DateTime(timezone=True), nullable=True),\n        \
             sa.Column(\"created_at\", sa.DateTime(timezone=True), nullable=False),\n        \
             sa.PrimaryKeyConstraint(\"id\", name={}),\n        \
             sa.UniqueConstraint(\"token_hash\", name={}),\n        \
             sa.ForeignKeyConstraint([\"user_id\"], [{}], name={}, ondelete=\"CASCADE\"),\n    )\n    \
             op.create_index({}, {}, [\"family_id\"])\n",
            python_str(REFRESH_TABLE),
            python_str(&pk),
            python_str(&uq),
            python_str(&format!("{USERS_TABLE}.id")),
            python_str(&fk),
            python_str(&ix),
            python_str(REFRESH_TABLE),
        );
    }
    if !plan.files.is_empty() {
        let pk = plan.names.constraint("pk", FILES_TABLE, &[]);
        let _ = write!(
            up,
            "    op.create_table(\n        {},\n        \
             sa.Column(\"id\", sa.Uuid(), nullable=False),\n        \
             sa.Column(\"filename\", sa.String(255), nullable=False),\n        \
             sa.Column(\"content_type\", sa.String(255), nullable=False),\n        \
             sa.Column(\"size_bytes\", sa.BigInteger(), nullable=False),\n        \
             sa.Column(\"sha256\", sa.String(64), nullable=False),\n        \
             sa.Column(\"owner_id\", sa.Uuid(), nullable=True),\n        \
             sa.Column(\"created_at\", sa.DateTime(timezone=True), nullable=False),\n        \
             sa.PrimaryKeyConstraint(\"id\", name={}),\n",
            python_str(FILES_TABLE),
            python_str(&pk)
        );
        if !plan.auth.is_empty() {
            let fk = plan.names.constraint("fk", FILES_TABLE, &["owner_id"]);
            let _ = writeln!(
                up,
                "        sa.ForeignKeyConstraint([\"owner_id\"], [{}], name={}, ondelete=\"RESTRICT\"),",
                python_str(&format!("{USERS_TABLE}.id")),
                python_str(&fk)
            );
        }
        up.push_str("    )\n");
        if !plan.auth.is_empty() {
            let ix = plan.names.constraint("ix", FILES_TABLE, &["owner_id"]);
            let _ = writeln!(
                up,
                "    op.create_index({}, {}, [\"owner_id\"])",
                python_str(&ix),
                python_str(FILES_TABLE)
            );
        }
    }

    let mut late_fks = String::new();
    let mut drop_fks = String::new();
    let order = plan.creation_order.clone();
    for &i in &order {
        let names = table_names(&mut plan.names, &plan.entities[i]);
        let entity = &plan.entities[i];
        let table = python_str(entity.table());
        let _ = write!(
            up,
            "    op.create_table(\n        {table},\n        sa.Column(\"id\", sa.Uuid(), nullable=False),\n"
        );
        if names.owner.is_some() {
            up.push_str("        sa.Column(\"owner_id\", sa.Uuid(), nullable=False),\n");
        }
        for field in &entity.fields {
            let default = field
                .def
                .default
                .as_ref()
                .map(|d| {
                    format!(
                        ", server_default=sa.text({})",
                        python_str(&server_default(field.def, d))
                    )
                })
                .unwrap_or_default();
            let _ = writeln!(
                up,
                "        sa.Column({}, {}, nullable={}{default}),",
                python_str(field.name()),
                column_type(&field.def.kind, "sa", false),
                if field.nullable() { "True" } else { "False" }
            );
        }
        up.push_str(
            "        sa.Column(\"created_at\", sa.DateTime(timezone=True), nullable=False),\n        \
             sa.Column(\"updated_at\", sa.DateTime(timezone=True), nullable=False),\n",
        );
        let _ = writeln!(
            up,
            "        sa.PrimaryKeyConstraint(\"id\", name={}),",
            python_str(&names.primary_key)
        );
        for (fields, name) in &names.uniques {
            let columns: Vec<String> = fields.iter().map(|f| python_str(f)).collect();
            let _ = writeln!(
                up,
                "        sa.UniqueConstraint({}, name={}),",
                columns.join(", "),
                python_str(name)
            );
        }
        for (_, sql, name) in &names.checks {
            let _ = writeln!(
                up,
                "        sa.CheckConstraint({}, name={}),",
                python_str(sql),
                python_str(name)
            );
        }
        if let Some((fk, _)) = &names.owner {
            let _ = writeln!(
                up,
                "        sa.ForeignKeyConstraint([\"owner_id\"], [{}], name={}, ondelete=\"RESTRICT\"),",
                python_str(&format!("{USERS_TABLE}.id")),
                python_str(fk)
            );
        }
        let mut sqlite_only = Vec::new();
        for (f, name) in &names.foreign_keys {
            let field = &entity.fields[*f];
            let target = &plan.entities[field.target.expect("a reference field")];
            let constraint = format!(
                "sa.ForeignKeyConstraint([{}], [{}], name={}, ondelete=\"RESTRICT\")",
                python_str(field.name()),
                python_str(&format!("{}.id", target.table())),
                python_str(name)
            );
            if plan.deferred_fks.contains(&(i, *f)) {
                sqlite_only.push(constraint);
                let _ = writeln!(
                    late_fks,
                    "    if not sqlite:\n        op.create_foreign_key({}, {table}, {}, [{}], [\"id\"], ondelete=\"RESTRICT\")",
                    python_str(name),
                    python_str(target.table()),
                    python_str(field.name())
                );
                let _ = writeln!(
                    drop_fks,
                    "    if not sqlite:\n        op.drop_constraint({}, {table}, type_=\"foreignkey\")",
                    python_str(name)
                );
            } else {
                let _ = writeln!(up, "        {constraint},");
            }
        }
        if !sqlite_only.is_empty() {
            up.push_str(&super::sqlite_only(8, &sqlite_only));
        }
        up.push_str("    )\n");
        if let Some((_, ix)) = &names.owner {
            let _ = writeln!(
                up,
                "    op.create_index({}, {table}, [\"owner_id\"])",
                python_str(ix)
            );
        }
        for (field, name) in &names.indexes {
            let _ = writeln!(
                up,
                "    op.create_index({}, {table}, [{}])",
                python_str(name),
                python_str(field)
            );
        }
    }
    up.push_str(&late_fks);

    down.push_str(&drop_fks);
    for &i in order.iter().rev() {
        let _ = writeln!(
            down,
            "    op.drop_table({})",
            python_str(plan.entities[i].table())
        );
    }
    if !plan.files.is_empty() {
        let _ = writeln!(down, "    op.drop_table({})", python_str(FILES_TABLE));
    }
    if !plan.auth.is_empty() {
        let _ = writeln!(down, "    op.drop_table({})", python_str(REFRESH_TABLE));
        let _ = writeln!(down, "    op.drop_table({})", python_str(USERS_TABLE));
    }
    if up.is_empty() {
        up.push_str("    pass\n");
    }
    if down.is_empty() {
        down.push_str("    pass\n");
    }

    format!(
        "\"\"\"The initial schema: every entity's table with its constraints, and the tables of the\n\
         built-in features.\n\nRevision ID: 0001\nRevises:\n\"\"\"\n\n\
         from collections.abc import Sequence\n\n\
         import sqlalchemy as sa\n\
         from alembic import op\n\n\
         revision: str = \"0001\"\n\
         down_revision: str | None = None\n\
         branch_labels: str | Sequence[str] | None = None\n\
         depends_on: str | Sequence[str] | None = None\n\n\n\
         def upgrade() -> None:\n{up}\n\n\
         def downgrade() -> None:\n{down}"
    )
}
