//! `backforge/model.json`: the database model a ZIP's migrations produce (tables, columns, types,
//! nullability, server defaults, constraints, indexes), read back from the initial migration this
//! generator (or an earlier one, which wrote no model) emitted, so upgrades start from what was
//! actually deployed.

use serde::{Deserialize, Serialize};

/// Where a ZIP carries its model.
pub const MODEL_PATH: &str = "backforge/model.json";
/// The version of the model's own format.
pub const MODEL_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbModel {
    pub format: u32,
    /// The revision at the head of the ZIP's Alembic chain.
    pub alembic_head: String,
    /// In creation order: every table referenced by a required column comes first.
    pub tables: Vec<Table>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    pub primary_key: Named,
    pub uniques: Vec<Named>,
    pub checks: Vec<Check>,
    pub foreign_keys: Vec<ForeignKey>,
    pub indexes: Vec<Named>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// The SQLAlchemy type as the migration writes it (`sa.String(20)`).
    #[serde(rename = "type")]
    pub sa_type: String,
    pub nullable: bool,
    /// SQL text of the server default.
    pub server_default: Option<String>,
}

/// A constraint or index over columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Named {
    pub name: String,
    pub columns: Vec<String>,
}

/// A CHECK constraint (enum values, lengths, ranges, patterns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub sql: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    pub name: String,
    pub columns: Vec<String>,
    pub referred_table: String,
    pub referred_columns: Vec<String>,
    pub ondelete: Option<String>,
}

impl DbModel {
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// The model as stored in the ZIP: pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// The model an initial migration in this generator's known format (`0001_initial.py`, as the
/// generator wrote it at any version) creates; `revision` is the chain's head.
pub fn from_initial_migration(source: &str, revision: &str) -> Result<DbModel, String> {
    let upgrade = source
        .split("\ndef downgrade")
        .next()
        .unwrap_or(source)
        .split_once("\ndef upgrade")
        .map(|(_, body)| body)
        .ok_or("the migration has no upgrade()")?;
    let tokens = tokenize(upgrade)?;
    let mut parser = Parser {
        tokens: &tokens,
        at: 0,
        source: upgrade,
    };
    let mut tables: Vec<Table> = Vec::new();
    while parser.at < tokens.len() {
        let Tok::Name(name) = &tokens[parser.at].0 else {
            parser.at += 1;
            continue;
        };
        let statement = name.as_str();
        if !matches!(
            statement,
            "op.create_table" | "op.create_index" | "op.create_foreign_key"
        ) {
            parser.at += 1;
            continue;
        }
        let Expr::Call { args, kwargs, .. } = parser.expr()? else {
            return Err(format!("{statement} is not a call"));
        };
        match statement {
            "op.create_table" => tables.push(create_table(&args)?),
            "op.create_index" => {
                let (name, table, columns) = match args.as_slice() {
                    [Expr::Str(n), Expr::Str(t), Expr::List(c)] => (n, t, strings(c)?),
                    _ => return Err("an op.create_index of an unknown shape".into()),
                };
                table_mut(&mut tables, table)?.indexes.push(Named {
                    name: name.clone(),
                    columns,
                });
            }
            _ => {
                let [
                    Expr::Str(name),
                    Expr::Str(table),
                    Expr::Str(target),
                    Expr::List(columns),
                    Expr::List(referred),
                ] = args.as_slice()
                else {
                    return Err("an op.create_foreign_key of an unknown shape".into());
                };
                let fk = ForeignKey {
                    name: name.clone(),
                    columns: strings(columns)?,
                    referred_table: target.clone(),
                    referred_columns: strings(referred)?,
                    ondelete: kwarg_str(&kwargs, "ondelete"),
                };
                let table = table_mut(&mut tables, table)?;
                // The same key is declared inline for SQLite: keep one.
                if !table.foreign_keys.iter().any(|k| k.name == fk.name) {
                    table.foreign_keys.push(fk);
                }
            }
        }
    }
    Ok(DbModel {
        format: MODEL_FORMAT,
        alembic_head: revision.to_owned(),
        tables,
    })
}

fn table_mut<'t>(tables: &'t mut [Table], name: &str) -> Result<&'t mut Table, String> {
    tables
        .iter_mut()
        .find(|t| t.name == name)
        .ok_or_else(|| format!("no table {name:?} before its index or key"))
}

fn strings(items: &[Expr]) -> Result<Vec<String>, String> {
    items
        .iter()
        .map(|e| match e {
            Expr::Str(s) => Ok(s.clone()),
            _ => Err("a list of names holds something else".to_owned()),
        })
        .collect()
}

fn kwarg_str(kwargs: &[(String, Expr)], key: &str) -> Option<String> {
    kwargs.iter().find_map(|(k, v)| match v {
        Expr::Str(s) if k == key => Some(s.clone()),
        _ => None,
    })
}

fn kwarg<'e>(kwargs: &'e [(String, Expr)], key: &str) -> Option<&'e Expr> {
    kwargs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn create_table(args: &[Expr]) -> Result<Table, String> {
    let Some((Expr::Str(name), items)) = args.split_first() else {
        return Err("an op.create_table without a table name".into());
    };
    let mut table = Table {
        name: name.clone(),
        columns: Vec::new(),
        primary_key: Named {
            name: String::new(),
            columns: Vec::new(),
        },
        uniques: Vec::new(),
        checks: Vec::new(),
        foreign_keys: Vec::new(),
        indexes: Vec::new(),
    };
    let mut pending: Vec<&Expr> = items.iter().collect();
    while let Some(item) = pending.pop() {
        match item {
            // `*([sa.ForeignKeyConstraint(...)] if sqlite else [])`: keys SQLite takes inline.
            Expr::Star(inner) => match inner.as_ref() {
                Expr::List(items) => pending.extend(items.iter()),
                _ => return Err("an unknown starred item in a table".into()),
            },
            Expr::Call { func, args, kwargs } => {
                let name = kwarg_str(kwargs, "name");
                match func.as_str() {
                    "sa.Column" => {
                        let [Expr::Str(column), ty, ..] = args.as_slice() else {
                            return Err("a column without name and type".into());
                        };
                        let Expr::Raw(sa_type) = ty else {
                            return Err("a column type of an unknown shape".into());
                        };
                        let nullable = !matches!(kwarg(kwargs, "nullable"), Some(Expr::Name(n)) if n == "False");
                        let server_default = match kwarg(kwargs, "server_default") {
                            None => None,
                            Some(Expr::Call { args, .. }) => match args.as_slice() {
                                [Expr::Str(sql)] => Some(sql.clone()),
                                _ => return Err("a server default of an unknown shape".into()),
                            },
                            Some(_) => return Err("a server default of an unknown shape".into()),
                        };
                        table.columns.push(Column {
                            name: column.clone(),
                            sa_type: sa_type.clone(),
                            nullable,
                            server_default,
                        });
                    }
                    "sa.PrimaryKeyConstraint" => {
                        table.primary_key = Named {
                            name: name.unwrap_or_default(),
                            columns: strings(args)?,
                        }
                    }
                    "sa.UniqueConstraint" => table.uniques.push(Named {
                        name: name.unwrap_or_default(),
                        columns: strings(args)?,
                    }),
                    "sa.CheckConstraint" => {
                        let [Expr::Str(sql)] = args.as_slice() else {
                            return Err("a CHECK of an unknown shape".into());
                        };
                        table.checks.push(Check {
                            name: name.unwrap_or_default(),
                            sql: sql.clone(),
                        });
                    }
                    "sa.ForeignKeyConstraint" => {
                        let [Expr::List(columns), Expr::List(referred)] = args.as_slice() else {
                            return Err("a foreign key of an unknown shape".into());
                        };
                        let referred = strings(referred)?;
                        let mut referred_table = String::new();
                        let mut referred_columns = Vec::new();
                        for r in referred {
                            let (t, c) = r.split_once('.').ok_or("a foreign key target")?;
                            referred_table = t.to_owned();
                            referred_columns.push(c.to_owned());
                        }
                        table.foreign_keys.push(ForeignKey {
                            name: name.unwrap_or_default(),
                            columns: strings(columns)?,
                            referred_table,
                            referred_columns,
                            ondelete: kwarg_str(kwargs, "ondelete"),
                        });
                    }
                    other => return Err(format!("an unknown table item {other}")),
                }
            }
            _ => return Err("an unknown table item".into()),
        }
    }
    // Items were popped from the end.
    table.columns.reverse();
    table.uniques.reverse();
    table.checks.reverse();
    table.foreign_keys.reverse();
    Ok(table)
}

/// A call's keyword arguments, in order.
type Kwargs = Vec<(String, Expr)>;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Str(String),
    Num(String),
    Punct(char),
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Name(String),
    Str(String),
    List(Vec<Expr>),
    Call {
        func: String,
        args: Vec<Expr>,
        kwargs: Vec<(String, Expr)>,
    },
    Star(Box<Expr>),
    /// A column type: the source text of a call that is an argument (kept verbatim).
    Raw(String),
}

/// Tokens with their byte span in the source.
fn tokenize(source: &str) -> Result<Vec<(Tok, usize, usize)>, String> {
    let bytes = source.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c == b'#' {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'.')
            {
                i += 1;
            }
            out.push((Tok::Name(source[start..i].to_owned()), start, i));
        } else if c.is_ascii_digit() || c == b'-' {
            i += 1;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                i += 1;
            }
            out.push((Tok::Num(source[start..i].to_owned()), start, i));
        } else if c == b'"' || c == b'\'' {
            // Either quote: the generator writes the one `ruff format` prefers.
            let quote = char::from(c);
            i += 1;
            let mut text = String::new();
            loop {
                let rest = source.get(i..).ok_or("a string runs off the end")?;
                let ch = rest.chars().next().ok_or("a string runs off the end")?;
                i += ch.len_utf8();
                match ch {
                    ch if ch == quote => break,
                    '\\' => {
                        let esc = source.as_bytes().get(i).copied().ok_or("a bad escape")?;
                        i += 1;
                        let hex = |i: &mut usize, n: usize| -> Result<char, String> {
                            let digits = source.get(*i..*i + n).ok_or("a bad escape")?;
                            *i += n;
                            u32::from_str_radix(digits, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or_else(|| "a bad escape".to_owned())
                        };
                        text.push(match esc {
                            b'"' => '"',
                            b'\'' => '\'',
                            b'\\' => '\\',
                            b'n' => '\n',
                            b'r' => '\r',
                            b't' => '\t',
                            b'x' => hex(&mut i, 2)?,
                            b'u' => hex(&mut i, 4)?,
                            b'U' => hex(&mut i, 8)?,
                            _ => return Err("an unknown escape".into()),
                        });
                    }
                    ch => text.push(ch),
                }
            }
            out.push((Tok::Str(text), start, i));
        } else {
            i += 1;
            out.push((Tok::Punct(c as char), start, i));
        }
    }
    Ok(out)
}

struct Parser<'t> {
    tokens: &'t [(Tok, usize, usize)],
    at: usize,
    source: &'t str,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.at).map(|t| &t.0)
    }

    fn next(&mut self) -> Result<Tok, String> {
        let tok = self
            .tokens
            .get(self.at)
            .map(|t| t.0.clone())
            .ok_or("the migration ends too early")?;
        self.at += 1;
        Ok(tok)
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        match self.next()? {
            Tok::Punct(p) if p == c => Ok(()),
            other => Err(format!("expected {c:?}, found {other:?}")),
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let expr = match self.next()? {
            Tok::Str(s) => Expr::Str(s),
            Tok::Num(n) => Expr::Name(n),
            Tok::Punct('*') => Expr::Star(Box::new(self.expr()?)),
            Tok::Punct('[') => Expr::List(self.items(']')?.0),
            Tok::Punct('(') => {
                let first = self.expr()?;
                // `(a if cond else b)` in a known migration: SQLite's branch is the first.
                if matches!(self.peek(), Some(Tok::Name(n)) if n == "if") {
                    self.at += 1;
                    self.expr()?;
                    match self.next()? {
                        Tok::Name(n) if n == "else" => {}
                        other => return Err(format!("expected else, found {other:?}")),
                    }
                    self.expr()?;
                }
                self.expect(')')?;
                first
            }
            Tok::Name(name) => {
                if self.peek() == Some(&Tok::Punct('(')) {
                    self.at += 1;
                    let (args, kwargs) = self.items(')')?;
                    Expr::Call {
                        func: name,
                        args,
                        kwargs,
                    }
                } else {
                    Expr::Name(name)
                }
            }
            other => return Err(format!("unexpected {other:?}")),
        };
        Ok(expr)
    }

    /// Comma-separated items up to `close`; `key=value` items are keyword arguments. A call
    /// among positional arguments is also kept as its raw source text (column types).
    fn items(&mut self, close: char) -> Result<(Vec<Expr>, Kwargs), String> {
        let mut args = Vec::new();
        let mut kwargs = Vec::new();
        loop {
            if self.peek() == Some(&Tok::Punct(close)) {
                self.at += 1;
                return Ok((args, kwargs));
            }
            let keyword = match (self.peek(), self.tokens.get(self.at + 1).map(|t| &t.0)) {
                (Some(Tok::Name(k)), Some(Tok::Punct('='))) => Some(k.clone()),
                _ => None,
            };
            if let Some(k) = keyword {
                self.at += 2;
                kwargs.push((k, self.expr()?));
            } else {
                let start = self.tokens.get(self.at).map(|t| t.1).unwrap_or_default();
                let expr = self.expr()?;
                let end = self.tokens.get(self.at - 1).map(|t| t.2).unwrap_or(start);
                args.push(match expr {
                    Expr::Call { ref func, .. } if func.starts_with("sa.") && !is_item(func) => {
                        Expr::Raw(self.source[start..end].to_owned())
                    }
                    e => e,
                });
            }
            match self.next()? {
                Tok::Punct(',') => {}
                Tok::Punct(p) if p == close => return Ok((args, kwargs)),
                other => return Err(format!("expected , or {close:?}, found {other:?}")),
            }
        }
    }
}

/// Table items (as opposed to column types).
fn is_item(func: &str) -> bool {
    matches!(
        func,
        "sa.Column"
            | "sa.PrimaryKeyConstraint"
            | "sa.UniqueConstraint"
            | "sa.CheckConstraint"
            | "sa.ForeignKeyConstraint"
            | "sa.text"
    )
}
