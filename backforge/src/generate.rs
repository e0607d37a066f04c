//! `backforge generate`: the generator's child process. It reads one `ChildJob` (JSON) on stdin
//! and writes the ZIP to stdout, or a refusal (JSON) to stderr with its exit code
//! (`generator::child`). The worker runs it under a memory limit and a wall clock, so a project
//! that makes the generator slow or large costs this process, never the server.

use std::io::{Read, Write};

use generator::child::{ChildInput, ChildRefusal, EXIT_BAD_JOB, EXIT_GENERATED, EXIT_REFUSED};
use generator::{GenerateError, generate_on};

/// Exit code of any other failure: the archive could not be written or stdout was closed.
const EXIT_FAILED: i32 = 1;

/// Runs one generation on the process's stdin, stdout and stderr; returns the exit code. Nothing
/// else is written to stdout (no logging is set up in this mode), so stdout is exactly the ZIP.
pub fn run() -> i32 {
    let mut input = Vec::new();
    if let Err(error) = std::io::stdin().lock().read_to_end(&mut input) {
        eprintln!("cannot read the job from stdin: {error}");
        return EXIT_BAD_JOB;
    }
    let request: ChildInput = match serde_json::from_slice(&input) {
        Ok(job) => job,
        Err(error) => {
            eprintln!("the job on stdin is not a generation job: {error}");
            return EXIT_BAD_JOB;
        }
    };
    drop(input);
    let base = match request.on_base() {
        Ok(base) => base,
        Err(error) => {
            eprintln!("the job on stdin is not a generation job: {error}");
            return EXIT_BAD_JOB;
        }
    };
    let job = &request.job;
    match generate_on(&job.project, job.project_version, job.target, base) {
        Ok(artifact) => {
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(&artifact.zip)
                .and_then(|()| stdout.flush())
            {
                Ok(()) => EXIT_GENERATED,
                Err(error) => {
                    eprintln!("cannot write the archive to stdout: {error}");
                    EXIT_FAILED
                }
            }
        }
        Err(GenerateError::Refused(problems)) => {
            let refusal = ChildRefusal { problems };
            match serde_json::to_string(&refusal) {
                Ok(text) => eprintln!("{text}"),
                Err(error) => eprintln!("cannot encode the refusal: {error}"),
            }
            EXIT_REFUSED
        }
        Err(error) => {
            eprintln!("{error}");
            EXIT_FAILED
        }
    }
}
