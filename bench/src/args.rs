//! The command line: a small hand-written parser for `bench [command] [options]`.

use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
usage: bench [--quick] [--only LIST] [--out FILE] [--url URL] [--w2-rate N]
       bench append [--quick] [--out FILE]

  (no command)  the suite: W1-W11 and M1 against raw-PostgreSQL baselines in the same run
  append        raw single-row INSERTs (a) against PgEventStore::append (b), alternating a, b, a, b
  --quick       small N and short windows (the suite finishes in under 60 s)
  --only LIST   run only these workloads, e.g. `--only W1,W4` (W2 needs W1: it runs at half of
                W1's best rate; M1 is measured with W1; W10 and W10u bring W1, whose ratio
                they are judged against)
  --out FILE    where to write the JSON report
                (default: target/bench-suite.json, or target/bench-append.json for append)
  --url URL     drive a running Backforge instead of starting `backforge serve`; its database
                must be DATABASE_URL (seeding and baselines use it); M1 is then not measured
  --w2-rate N   offer W2 at N commands/s instead of half of W1's best, to compare builds at one
                rate and from the same seeded state (`--only W2 --w2-rate N` runs without W1);
                the goal is judged at half of W1's best
";

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Suite(SuiteArgs),
    Append(AppendArgs),
    Help,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendArgs {
    pub quick: bool,
    pub out: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuiteArgs {
    pub quick: bool,
    pub out: PathBuf,
    pub url: Option<String>,
    /// Workload ids to run; empty means all.
    pub only: Vec<String>,
    /// W2's offered rate (commands/s) instead of half of W1's best.
    pub w2_rate: Option<u32>,
}

/// The suite's workloads, in the order they run.
pub const WORKLOADS: [&str; 13] = [
    "W1", "M1", "W2", "W3", "W5", "W6", "W7", "W8", "W9", "W10", "W10u", "W11", "W4",
];

impl SuiteArgs {
    /// Whether workload `id` runs in this invocation.
    pub fn runs(&self, id: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == id)
    }
}

fn parse_only(list: &str) -> Result<Vec<String>, String> {
    let mut only: Vec<String> = Vec::new();
    for id in list.split(',').map(str::trim) {
        let Some(known) = WORKLOADS.iter().find(|w| w.eq_ignore_ascii_case(id)) else {
            return Err(format!(
                "unknown workload `{id}` in --only (one of {})",
                WORKLOADS.join(", ")
            ));
        };
        only.push((*known).to_owned());
    }
    // W10 and W10u are judged against W1's ratio measured in the same run.
    if only.iter().any(|w| w.starts_with("W10")) && !only.iter().any(|w| w == "W1") {
        only.push("W1".into());
    }
    if only.iter().any(|w| w == "W1") && !only.iter().any(|w| w == "M1") {
        only.push("M1".into());
    }
    Ok(only)
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
    let mut args = args.into_iter().peekable();
    let append = match args.peek().map(String::as_str) {
        Some("-h" | "--help" | "help") => return Ok(Command::Help),
        Some("append") => {
            args.next();
            true
        }
        Some("suite") => {
            args.next();
            false
        }
        Some(c) if !c.starts_with("--") => return Err(format!("unknown command `{c}`")),
        _ => false,
    };
    let mut quick = false;
    let mut out = None;
    let mut url = None;
    let mut only = Vec::new();
    let mut w2_rate = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--out" => out = Some(PathBuf::from(args.next().ok_or("--out needs a file name")?)),
            "--url" if !append => url = Some(args.next().ok_or("--url needs a URL")?),
            "--only" if !append => {
                only = parse_only(&args.next().ok_or("--only needs a list of workloads")?)?
            }
            "--w2-rate" if !append => {
                w2_rate = Some(parse_rate(&args.next().ok_or("--w2-rate needs a rate")?)?)
            }
            "-h" | "--help" => return Ok(Command::Help),
            other => {
                if let Some(file) = other.strip_prefix("--out=").filter(|f| !f.is_empty()) {
                    out = Some(PathBuf::from(file));
                } else if let Some(u) = other
                    .strip_prefix("--url=")
                    .filter(|u| !append && !u.is_empty())
                {
                    url = Some(u.to_owned());
                } else if let Some(list) = other.strip_prefix("--only=").filter(|_| !append) {
                    only = parse_only(list)?;
                } else if let Some(rate) = other.strip_prefix("--w2-rate=").filter(|_| !append) {
                    w2_rate = Some(parse_rate(rate)?);
                } else {
                    return Err(format!("unknown option `{other}`"));
                }
            }
        }
    }
    if only.iter().any(|w| w == "W2") && !only.iter().any(|w| w == "W1") && w2_rate.is_none() {
        return Err(
            "--only W2 needs W1 too (W2 runs at half of W1's best rate), or --w2-rate".into(),
        );
    }
    if append {
        Ok(Command::Append(AppendArgs {
            quick,
            out: out.unwrap_or_else(|| PathBuf::from("target/bench-append.json")),
        }))
    } else {
        Ok(Command::Suite(SuiteArgs {
            quick,
            out: out.unwrap_or_else(|| PathBuf::from("target/bench-suite.json")),
            url: url.map(|u| u.trim_end_matches('/').to_owned()),
            only,
            w2_rate,
        }))
    }
}

fn parse_rate(raw: &str) -> Result<u32, String> {
    raw.parse::<u32>().ok().filter(|r| *r >= 1).ok_or_else(|| {
        format!("--w2-rate needs a whole number of commands/s, at least 1 (got `{raw}`)")
    })
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
    fn the_suite_is_the_default() {
        assert_eq!(
            parse_str(""),
            Ok(Command::Suite(SuiteArgs {
                quick: false,
                out: PathBuf::from("target/bench-suite.json"),
                url: None,
                only: vec![],
                w2_rate: None,
            }))
        );
        assert_eq!(
            parse_str("--quick --url http://127.0.0.1:8080/ --out=s.json"),
            Ok(Command::Suite(SuiteArgs {
                quick: true,
                out: PathBuf::from("s.json"),
                url: Some("http://127.0.0.1:8080".to_owned()),
                only: vec![],
                w2_rate: None,
            }))
        );
    }

    #[test]
    fn only_selects_workloads_and_keeps_their_dependencies() {
        let Ok(Command::Suite(args)) = parse_str("--only w1,W4") else {
            panic!("--only was refused");
        };
        assert_eq!(args.only, vec!["W1", "W4", "M1"]);
        assert!(args.runs("W4") && args.runs("M1") && !args.runs("W3"));
        assert!(parse_str("--only W2").is_err());
        assert!(parse_str("--only W12").is_err());
        let Ok(Command::Suite(args)) = parse_str("--only w10u,W11") else {
            panic!("--only W10u,W11 was refused");
        };
        assert_eq!(args.only, vec!["W10u", "W11", "W1", "M1"]);
        let Ok(Command::Suite(args)) = parse_str("--only w9") else {
            panic!("--only W9 was refused");
        };
        assert!(args.runs("W9") && !args.runs("W1") && !args.runs("M1"));
        assert!(parse_str("append --only W1").is_err());
    }

    #[test]
    fn w2_can_be_offered_at_a_given_rate() {
        let Ok(Command::Suite(args)) = parse_str("--only W1,W2 --w2-rate 1000") else {
            panic!("--w2-rate was refused");
        };
        assert_eq!(args.w2_rate, Some(1000));
        let Ok(Command::Suite(args)) = parse_str("--w2-rate=250") else {
            panic!("--w2-rate= was refused");
        };
        assert_eq!(args.w2_rate, Some(250));
        let Ok(Command::Suite(args)) = parse_str("--only W2 --w2-rate 800") else {
            panic!("W2 alone at a given rate was refused");
        };
        assert!(args.runs("W2") && !args.runs("W1"));
        for bad in [
            "--w2-rate 0",
            "--w2-rate -3",
            "--w2-rate 2.5",
            "--w2-rate fast",
            "--w2-rate",
        ] {
            assert!(parse_str(bad).is_err(), "{bad} was accepted");
        }
        assert!(parse_str("append --w2-rate 10").is_err());
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(parse_str("read").is_err());
        assert!(parse_str("append --out").is_err());
        assert!(parse_str("append --fast").is_err());
        assert!(parse_str("append --url http://x").is_err());
        assert!(parse_str("--url").is_err());
    }
}
