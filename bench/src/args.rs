//! The command line: a small hand-written parser for `bench <command> [options]`.

use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
usage: bench append [--quick] [--out FILE]

  append        raw single-row INSERTs (a) against PgEventStore::append (b), alternating a, b, a, b
  --quick       0.5 s warm-up and 2 s per run instead of 2 s and 10 s
  --out FILE    where to write the JSON report (default: target/bench-append.json)
";

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Append(AppendArgs),
    Help,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendArgs {
    pub quick: bool,
    pub out: PathBuf,
}

impl AppendArgs {
    /// Warm-up before each measured run.
    pub fn warmup(&self) -> Duration {
        if self.quick {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(2)
        }
    }

    /// Length of each measured run.
    pub fn duration(&self) -> Duration {
        if self.quick {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(10)
        }
    }
}

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    let mut args = args.into_iter();
    let command = match args.next() {
        None => return Err("missing command".to_owned()),
        Some(c) if c == "-h" || c == "--help" || c == "help" => return Ok(Command::Help),
        Some(c) => c,
    };
    if command != "append" {
        return Err(format!("unknown command `{command}`"));
    }
    let mut parsed = AppendArgs {
        quick: false,
        out: PathBuf::from("target/bench-append.json"),
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => parsed.quick = true,
            "--out" => {
                let file = args.next().ok_or("--out needs a file name")?;
                parsed.out = PathBuf::from(file);
            }
            "-h" | "--help" => return Ok(Command::Help),
            other => match other.strip_prefix("--out=") {
                Some(file) if !file.is_empty() => parsed.out = PathBuf::from(file),
                _ => return Err(format!("unknown option `{other}`")),
            },
        }
    }
    Ok(Command::Append(parsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<Command, String> {
        parse(s.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn append_defaults_and_options() {
        assert_eq!(
            parse_str("append"),
            Ok(Command::Append(AppendArgs {
                quick: false,
                out: PathBuf::from("target/bench-append.json"),
            }))
        );
        assert_eq!(
            parse_str("append --quick --out x.json"),
            Ok(Command::Append(AppendArgs {
                quick: true,
                out: PathBuf::from("x.json"),
            }))
        );
        assert_eq!(
            parse_str("append --out=y.json"),
            Ok(Command::Append(AppendArgs {
                quick: false,
                out: PathBuf::from("y.json"),
            }))
        );
        assert_eq!(parse_str("--help"), Ok(Command::Help));
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(parse_str("").is_err());
        assert!(parse_str("read").is_err());
        assert!(parse_str("append --out").is_err());
        assert!(parse_str("append --fast").is_err());
    }
}
