//! Password hashing with argon2id (OWASP parameters) on the blocking pool, in two bounded queues:
//! sign-in, and everything else that hashes (registration, password change). Each queue runs a
//! fixed number of hashes at once and lets a fixed number wait; past that it answers 503 at once,
//! so a flood of registrations can neither starve sign-in nor pile up memory and latency.

use std::sync::Arc;

use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use argon2::{Algorithm, Argon2, Params, Version};
use runtime::ApiError;
use tokio::sync::Semaphore;

/// How many hashes may wait in each queue beyond those running.
pub const QUEUE_DEPTH: usize = 64;

/// OWASP: 19 MiB of memory, 2 iterations, 1 lane.
fn argon2() -> Result<Argon2<'static>, ApiError> {
    let params = Params::new(19 * 1024, 2, 1, None)
        .map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Which queue a hash waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// `/auth/login`.
    Login,
    /// Registration and password change.
    Other,
}

/// One bounded queue: `admitted` counts running plus waiting hashes, `running` the ones on a core.
struct Queue {
    admitted: Arc<Semaphore>,
    running: Arc<Semaphore>,
    name: &'static str,
}

impl Queue {
    fn new(slots: usize, name: &'static str) -> Self {
        let slots = slots.max(1);
        Self {
            admitted: Arc::new(Semaphore::new(slots + QUEUE_DEPTH)),
            running: Arc::new(Semaphore::new(slots)),
            name,
        }
    }

    /// Runs `work` on the blocking pool once a slot is free; 503 when the queue is full.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let Ok(_admitted) = self.admitted.clone().try_acquire_owned() else {
            tracing::warn!(
                queue = self.name,
                "password hashing queue full; answering 503"
            );
            return Err(ApiError::unavailable(
                "the server is busy checking passwords; retry shortly",
                1,
            ));
        };
        let _running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(ApiError::internal)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(ApiError::internal)?
    }
}

#[derive(Clone)]
pub struct Passwords {
    login: Arc<Queue>,
    other: Arc<Queue>,
    /// Verified against when the e-mail is unknown, so a login takes as long either way.
    dummy_hash: Arc<String>,
}

impl Passwords {
    /// `login_slots` hashes of sign-in and `other_slots` of registration and password change may
    /// run at once; each queue lets [`QUEUE_DEPTH`] more wait.
    pub fn new(login_slots: usize, other_slots: usize) -> anyhow::Result<Self> {
        let salt = SaltString::generate(&mut OsRng);
        let dummy = argon2()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .hash_password(b"backforge-dummy-password", &salt)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .to_string();
        Ok(Self {
            login: Arc::new(Queue::new(login_slots, "login")),
            other: Arc::new(Queue::new(other_slots, "other")),
            dummy_hash: Arc::new(dummy),
        })
    }

    fn queue(&self, lane: Lane) -> &Queue {
        match lane {
            Lane::Login => &self.login,
            Lane::Other => &self.other,
        }
    }

    pub async fn hash(&self, lane: Lane, password: String) -> Result<String, ApiError> {
        self.queue(lane)
            .run(move || {
                let salt = SaltString::generate(&mut OsRng);
                argon2()?
                    .hash_password(password.as_bytes(), &salt)
                    .map(|h| h.to_string())
                    .map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))
            })
            .await
    }

    /// Verifies `password` against `hash`, or against the dummy hash when `hash` is `None`
    /// (returning false), so unknown accounts cost the same time as known ones.
    pub async fn verify(
        &self,
        lane: Lane,
        password: String,
        hash: Option<String>,
    ) -> Result<bool, ApiError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.as_str().to_owned());
        let ok = self
            .queue(lane)
            .run(move || {
                let parsed = PasswordHash::new(&hash)
                    .map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
                Ok(argon2()?
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok())
            })
            .await?;
        Ok(ok && known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_answers_503_at_once_and_the_other_queue_still_works() {
        let passwords = Passwords::new(1, 1).unwrap();
        let other = passwords.other.clone();
        // Hold every place of the `other` queue: one running, the rest waiting.
        let held: Vec<_> = (0..1 + QUEUE_DEPTH)
            .map(|_| other.admitted.clone().try_acquire_owned().unwrap())
            .collect();
        let refused = passwords
            .hash(Lane::Other, "a long password".into())
            .await
            .unwrap_err();
        assert_eq!(refused.problem().status, 503);
        let hash = passwords
            .hash(Lane::Login, "a long password".into())
            .await
            .unwrap();
        assert!(
            passwords
                .verify(Lane::Login, "a long password".into(), Some(hash))
                .await
                .unwrap()
        );
        drop(held);
        assert!(passwords.hash(Lane::Other, "x".repeat(12)).await.is_ok());
    }

    #[tokio::test]
    async fn an_unknown_account_never_verifies() {
        let passwords = Passwords::new(1, 1).unwrap();
        assert!(
            !passwords
                .verify(Lane::Login, "backforge-dummy-password".into(), None)
                .await
                .unwrap()
        );
    }
}
