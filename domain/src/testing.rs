//! Given/when/then for deciders, with a fixed clock and readable ids, for this crate's tests and other crates'.
//!
//! ```
//! use domain::testing::{given_nothing, t0, user_id};
//! use domain::user::{RegisterUser, Role, User, UserCommand, UserEvent};
//!
//! given_nothing::<User>()
//!     .when(UserCommand::Register(RegisterUser {
//!         user_id: user_id(1),
//!         email: " Ada@Example.com ".into(),
//!         name: "Ada".into(),
//!         role: Role::Member,
//!         at: t0(),
//!     }))
//!     .then([UserEvent::UserRegistered {
//!         user_id: user_id(1),
//!         email: "ada@example.com".into(),
//!         name: "Ada".into(),
//!         role: Role::Member,
//!         registered_at: t0(),
//!     }]);
//! ```

use std::fmt::Debug;

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::Decider;
use crate::generation::{Generation, GenerationEvent};
use crate::ids::{FeatureId, FunctionId, GenerationId, ProjectId, UserId};
use crate::limits::Limits;
use crate::project::{Project, ProjectEvent};
use crate::user::{User, UserEvent};

/// Ties an event type to its decider, so `given(events)` knows which state to fold.
pub trait EventOf {
    type Decider: Decider<Event = Self>;
}

impl EventOf for UserEvent {
    type Decider = User;
}

impl EventOf for ProjectEvent {
    type Decider = Project;
}

impl EventOf for GenerationEvent {
    type Decider = Generation;
}

/// The state after `events`.
pub fn given<E: EventOf>(events: impl IntoIterator<Item = E>) -> Given<E::Decider> {
    let events: Vec<E> = events.into_iter().collect();
    Given {
        state: E::Decider::fold(&events),
        limits: Limits::default(),
    }
}

/// The state before any event, for aggregates that do not exist yet.
pub fn given_nothing<D: Decider>() -> Given<D> {
    Given {
        state: D::default(),
        limits: Limits::default(),
    }
}

pub struct Given<D> {
    state: D,
    limits: Limits,
}

impl<D: Decider> Given<D> {
    /// Decides with these limits instead of the defaults.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The folded state, for assertions on `evolve`.
    pub fn state(&self) -> &D {
        &self.state
    }

    pub fn when(self, command: D::Command) -> When<D> {
        let outcome = self.state.decide(&command, &self.limits);
        When {
            state: self.state,
            outcome,
        }
    }
}

pub struct When<D: Decider> {
    state: D,
    outcome: Result<Vec<D::Event>, D::Error>,
}

impl<D: Decider> When<D>
where
    D::Event: Debug + PartialEq,
    D::Error: Debug + PartialEq,
{
    /// Asserts the decision was exactly `expected`, and returns the state after those events.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = D::Event>) -> D {
        let expected: Vec<D::Event> = expected.into_iter().collect();
        match self.outcome {
            Ok(events) => {
                assert_eq!(events, expected, "the command decided other events");
                let mut state = self.state;
                for event in &events {
                    state.evolve(event);
                }
                state
            }
            Err(error) => {
                panic!("expected events {expected:?}, but the command was refused: {error:?}")
            }
        }
    }

    /// Asserts the command was accepted and changed nothing.
    #[track_caller]
    pub fn then_nothing(self) -> D {
        self.then([])
    }

    /// Asserts the command was refused with exactly `expected`.
    #[track_caller]
    pub fn then_err(self, expected: D::Error) {
        match self.outcome {
            Ok(events) => {
                panic!("expected the error {expected:?}, but the command decided {events:?}")
            }
            Err(error) => assert_eq!(
                error, expected,
                "the command was refused for another reason"
            ),
        }
    }

    /// The raw decision, for assertions the other methods cannot express.
    pub fn outcome(self) -> Result<Vec<D::Event>, D::Error> {
        self.outcome
    }
}

/// The fixed "now" of tests: 2025-01-15T10:00:00Z.
pub fn t0() -> OffsetDateTime {
    time::macros::datetime!(2025-01-15 10:00:00 UTC)
}

/// `t0()` plus `minutes`, for events that happen later.
pub fn t(minutes: i64) -> OffsetDateTime {
    t0() + Duration::minutes(minutes)
}

/// Readable ids: `user_id(1)` is `00000000-0000-0000-0000-000000000001`.
pub fn user_id(n: u128) -> UserId {
    UserId::from_uuid(Uuid::from_u128(n))
}

pub fn project_id(n: u128) -> ProjectId {
    ProjectId::from_uuid(Uuid::from_u128(n))
}

pub fn feature_id(n: u128) -> FeatureId {
    FeatureId::from_uuid(Uuid::from_u128(n))
}

pub fn function_id(n: u128) -> FunctionId {
    FunctionId::from_uuid(Uuid::from_u128(n))
}

pub fn generation_id(n: u128) -> GenerationId {
    GenerationId::from_uuid(Uuid::from_u128(n))
}
