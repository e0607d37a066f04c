//! Given/when/then tests of the AI request aggregate.

use rust_decimal::Decimal;
use serde_json::json;

use super::*;
use crate::Decider;
use crate::ai::Provider;
use crate::project::{GenerationMode, ProjectEvent};
use crate::testing::{feature_id, function_id, given, given_nothing, project_id, t, t0, user_id};

fn request_id() -> AiRequestId {
    AiRequestId::from_uuid(uuid::Uuid::from_u128(40))
}

fn model_config() -> ModelConfig {
    ModelConfig {
        provider: Provider::Openai,
        base_url: "http://127.0.0.1:11434/v1".into(),
        model: "llama3.2".into(),
        api_key_env: None,
        api_version: None,
        input_usd_per_mtok: Decimal::new(25, 1),  // 2.5
        output_usd_per_mtok: Decimal::new(10, 0), // 10
        max_output_tokens: 4096,
        temperature: None,
        timeout_ms: None,
    }
}

fn shop(status_archived: bool) -> Project {
    let mut events = vec![ProjectEvent::ProjectCreated {
        project_id: project_id(10),
        owner_id: user_id(1),
        name: "Shop".into(),
        description: None,
        generation_mode: GenerationMode::AiAssisted,
        created_at: t0(),
    }];
    if status_archived {
        events.push(ProjectEvent::ProjectArchived {
            project_id: project_id(10),
            archived_at: t(1),
        });
    }
    Project::fold(&events)
}

fn command(kind: AiRequestKind, prompt: Option<&str>) -> RequestAi {
    RequestAi {
        request_id: request_id(),
        kind,
        project: shop(false),
        project_version: 1,
        feature_id: None,
        function_id: None,
        user_prompt: prompt.map(str::to_owned),
        model: "local".into(),
        model_config: model_config(),
        prompt: PromptRef {
            name: "generate_config".into(),
            version: 1,
        },
        system: "You design backends.".into(),
        template: "{{ prompt }}".into(),
        requested_by: user_id(1),
        at: t(2),
    }
}

fn request() -> AiRequestCommand {
    AiRequestCommand::Request(Box::new(command(
        AiRequestKind::GenerateConfig,
        Some("a shop with customers"),
    )))
}

fn requested() -> AiRequestEvent {
    AiRequestEvent::AiRequested {
        request_id: request_id(),
        kind: AiRequestKind::GenerateConfig,
        project_id: project_id(10),
        project_version: 1,
        feature_id: None,
        function_id: None,
        user_prompt: Some("a shop with customers".into()),
        model: "local".into(),
        model_config: Box::new(model_config()),
        prompt: PromptRef {
            name: "generate_config".into(),
            version: 1,
        },
        system: "You design backends.".into(),
        template: "{{ prompt }}".into(),
        requested_by: user_id(1),
        requested_at: t(2),
    }
}

fn started(delivery: u32) -> AiRequestEvent {
    AiRequestEvent::AiRequestStarted {
        request_id: request_id(),
        delivery,
        started_at: t(3),
    }
}

fn usage(input: u64, output: u64) -> TokenUsage {
    TokenUsage {
        input_tokens: input,
        output_tokens: output,
    }
}

fn record(n: u32, error: Option<&str>) -> AiRequestCommand {
    AiRequestCommand::RecordAttempt(RecordAttempt {
        n,
        usage: usage(1000, 500),
        latency_ms: 120,
        error: error.map(str::to_owned),
        answer: Some(AttemptAnswer::Json(json!({"features": []}))),
        at: t(4),
    })
}

/// 1000 × 2.5 / 1e6 + 500 × 10 / 1e6 = 0.0025 + 0.005 = 0.0075
fn one_cost() -> Decimal {
    "0.007500".parse().unwrap()
}

fn recorded(n: u32, error: Option<&str>) -> AiRequestEvent {
    AiRequestEvent::AiAttemptRecorded {
        request_id: request_id(),
        attempt: Attempt {
            n,
            usage: usage(1000, 500),
            cost_usd: one_cost(),
            latency_ms: 120,
            error: error.map(str::to_owned),
            answer: Some(AttemptAnswer::Json(json!({"features": []}))),
        },
        recorded_at: t(4),
    }
}

fn succeeded(attempts: u64) -> AiRequestEvent {
    AiRequestEvent::AiRequestSucceeded {
        request_id: request_id(),
        proposal: json!({"features": []}),
        usage: usage(1000 * attempts, 500 * attempts),
        cost_usd: one_cost() * Decimal::from(attempts),
        succeeded_at: t(5),
    }
}

fn succeed() -> AiRequestCommand {
    AiRequestCommand::Succeed(SucceedAi {
        proposal: json!({"features": []}),
        at: t(5),
    })
}

fn apply() -> AiRequestCommand {
    AiRequestCommand::Apply(ApplyProposal {
        project_version: 4,
        applied_by: user_id(1),
        at: t(6),
    })
}

#[test]
fn a_request_records_the_model_and_prompt_snapshot() {
    let state = given_nothing::<AiRequest>()
        .when(request())
        .then([requested()]);
    assert!(state.exists());
    assert_eq!(state.status, AiRequestStatus::Requested);
    assert_eq!(state.model_config, model_config());
    assert_eq!(state.cost_usd().to_string(), "0.000000");
}

#[test]
fn a_prompt_over_8000_characters_is_refused_and_8000_multibyte_characters_are_not() {
    let long = "é".repeat(PROMPT_MAX_CHARS + 1);
    let outcome = given_nothing::<AiRequest>()
        .when(AiRequestCommand::Request(Box::new(command(
            AiRequestKind::GenerateConfig,
            Some(&long),
        ))))
        .outcome();
    assert!(
        matches!(&outcome, Err(AiRequestError::Validation(e)) if e[0].field == "/prompt"),
        "{outcome:?}"
    );
    let exact = "é".repeat(PROMPT_MAX_CHARS);
    assert!(
        given_nothing::<AiRequest>()
            .when(AiRequestCommand::Request(Box::new(command(
                AiRequestKind::GenerateConfig,
                Some(&exact),
            ))))
            .outcome()
            .is_ok()
    );
}

#[test]
fn generate_config_needs_a_prompt() {
    let outcome = given_nothing::<AiRequest>()
        .when(AiRequestCommand::Request(Box::new(command(
            AiRequestKind::GenerateConfig,
            None,
        ))))
        .outcome();
    assert!(matches!(&outcome, Err(AiRequestError::Validation(e)) if e[0].field == "/prompt"));
}

#[test]
fn enhance_and_code_name_an_existing_feature_or_function() {
    let mut enhance = command(AiRequestKind::EnhanceConfig, None);
    enhance.feature_id = Some(feature_id(3));
    let outcome = given_nothing::<AiRequest>()
        .when(AiRequestCommand::Request(Box::new(enhance)))
        .outcome();
    assert!(matches!(&outcome, Err(AiRequestError::Validation(e)) if e[0].field == "/feature_id"));
    let mut code = command(AiRequestKind::GenerateCode, None);
    code.function_id = Some(function_id(3));
    let outcome = given_nothing::<AiRequest>()
        .when(AiRequestCommand::Request(Box::new(code)))
        .outcome();
    assert!(matches!(&outcome, Err(AiRequestError::Validation(e)) if e[0].field == "/function_id"));
    let outcome = given_nothing::<AiRequest>()
        .when(AiRequestCommand::Request(Box::new(command(
            AiRequestKind::EnhanceConfig,
            None,
        ))))
        .outcome();
    assert!(matches!(&outcome, Err(AiRequestError::Validation(e)) if e[0].field.is_empty()));
}

#[test]
fn an_archived_or_missing_project_is_refused() {
    let mut archived = command(AiRequestKind::GenerateConfig, Some("x"));
    archived.project = shop(true);
    given_nothing::<AiRequest>()
        .when(AiRequestCommand::Request(Box::new(archived)))
        .then_err(AiRequestError::ProjectArchived);
    let mut missing = command(AiRequestKind::GenerateConfig, Some("x"));
    missing.project = Project::default();
    given_nothing::<AiRequest>()
        .when(AiRequestCommand::Request(Box::new(missing)))
        .then_err(AiRequestError::ProjectNotFound);
    given([requested()])
        .when(request())
        .then_err(AiRequestError::AlreadyRequested);
}

#[test]
fn a_start_runs_the_request_and_a_duplicate_delivery_changes_nothing() {
    given([requested()])
        .when(AiRequestCommand::Start(StartAi {
            delivery: 1,
            at: t(3),
        }))
        .then([started(1)]);
    given([requested(), started(2)])
        .when(AiRequestCommand::Start(StartAi {
            delivery: 1,
            at: t(3),
        }))
        .then_nothing();
}

#[test]
fn an_attempt_is_costed_at_the_recorded_prices_and_numbered_in_order() {
    given([requested(), started(1)])
        .when(record(1, None))
        .then([recorded(1, None)]);
    given([requested(), started(1)])
        .when(record(2, None))
        .then_err(AiRequestError::AttemptOutOfOrder {
            expected: 1,
            got: 2,
        });
    given([requested()])
        .when(record(1, None))
        .then_err(AiRequestError::NotStarted);
}

#[test]
fn at_most_three_attempts() {
    given([
        requested(),
        started(1),
        recorded(1, Some("bad")),
        recorded(2, Some("bad")),
        recorded(3, Some("bad")),
    ])
    .when(record(4, None))
    .then_err(AiRequestError::TooManyAttempts);
}

#[test]
fn a_repaired_request_succeeds_with_both_costs_summed() {
    let state = given([
        requested(),
        started(1),
        recorded(1, Some("feature 0: bad name")),
        recorded(2, None),
    ])
    .when(succeed())
    .then([succeeded(2)]);
    assert_eq!(state.status, AiRequestStatus::Succeeded);
    assert_eq!(state.cost_usd().to_string(), "0.015000");
    let view = serde_json::to_value(state.view()).unwrap();
    assert_eq!(view["cost_usd"], "0.015000");
    assert_eq!(view["attempts"][0]["error"], "feature 0: bad name");
    assert_eq!(
        view["usage"],
        json!({"input_tokens": 2000, "output_tokens": 1000})
    );
    assert!(view.get("model_config").is_none() && view.get("system").is_none());
}

#[test]
fn success_needs_a_last_attempt_without_error() {
    given([requested(), started(1), recorded(1, Some("bad"))])
        .when(succeed())
        .then_err(AiRequestError::NoUsableAttempt);
    given([requested(), started(1)])
        .when(succeed())
        .then_err(AiRequestError::NoUsableAttempt);
}

#[test]
fn failing_after_three_attempts_counts_all_three_costs_and_finishes_once() {
    let fail = || {
        AiRequestCommand::Fail(FailAi {
            error: "still invalid after 3 attempts\0".into(),
            at: t(5),
        })
    };
    let state = given([
        requested(),
        started(1),
        recorded(1, Some("bad")),
        recorded(2, Some("bad")),
        recorded(3, Some("bad")),
    ])
    .when(fail())
    .then([AiRequestEvent::AiRequestFailed {
        request_id: request_id(),
        error: "still invalid after 3 attempts\u{FFFD}".into(),
        usage: usage(3000, 1500),
        cost_usd: "0.022500".parse().unwrap(),
        failed_at: t(5),
    }]);
    assert_eq!(state.status, AiRequestStatus::Failed);
    given([requested(), started(1), succeeded(0)])
        .when(fail())
        .then_err(AiRequestError::AlreadyFinished);
}

#[test]
fn foreign_text_is_sanitised_and_cut() {
    let huge = "x".repeat(ERROR_MAX_BYTES * 2);
    let events = given([requested(), started(1)])
        .when(AiRequestCommand::RecordAttempt(RecordAttempt {
            n: 1,
            usage: usage(1, 1),
            latency_ms: 1,
            error: Some(huge),
            answer: Some(AttemptAnswer::Json(
                json!({"a": "y".repeat(ANSWER_MAX_BYTES)}),
            )),
            at: t(4),
        }))
        .outcome()
        .unwrap();
    let AiRequestEvent::AiAttemptRecorded { attempt, .. } = &events[0] else {
        panic!("{events:?}")
    };
    assert!(attempt.error.as_ref().unwrap().len() <= ERROR_MAX_BYTES);
    assert!(matches!(&attempt.answer, Some(AttemptAnswer::Text(t)) if t.len() <= ANSWER_MAX_BYTES));
}

#[test]
fn apply_only_after_success_and_only_once() {
    given([requested(), started(1)])
        .when(apply())
        .then_err(AiRequestError::NotSucceeded("running"));
    let applied = AiRequestEvent::AiProposalApplied {
        request_id: request_id(),
        project_id: project_id(10),
        project_version: 4,
        applied_by: user_id(1),
        applied_at: t(6),
    };
    let state = given([requested(), started(1), recorded(1, None), succeeded(1)])
        .when(apply())
        .then([applied.clone()]);
    assert_eq!(state.applied_at, Some(t(6)));
    given([
        requested(),
        started(1),
        recorded(1, None),
        succeeded(1),
        applied,
    ])
    .when(apply())
    .then_err(AiRequestError::AlreadyApplied);
}

#[test]
fn nothing_but_a_request_is_decided_on_a_missing_request() {
    given_nothing::<AiRequest>()
        .when(AiRequestCommand::Start(StartAi {
            delivery: 1,
            at: t(3),
        }))
        .then_err(AiRequestError::NotFound);
}

#[test]
fn the_reservation_is_three_attempts_of_the_prompt_the_worker_renders_at_the_output_cap() {
    use crate::ai::budget::{MESSAGE_FRAMING_TOKENS, request_reservation};
    // Given a request whose templates render "You design backends." and the user's text
    let asked = command(AiRequestKind::GenerateConfig, Some("A shop"));
    // When its worst case is reserved
    let reserved = request_reservation(&asked);
    // Then every byte of both messages and of the JSON Schema counts as a token, plus framing,
    // at the input price, and the output cap at the output price, three times
    let schema = super::super::proposal::json_schema(AiRequestKind::GenerateConfig)
        .to_string()
        .len() as u64;
    let prompt_tokens = "You design backends.".len() as u64
        + "A shop".len() as u64
        + schema
        + 3 * MESSAGE_FRAMING_TOKENS;
    let one = (Decimal::from(prompt_tokens) * Decimal::new(25, 1)
        + Decimal::from(4096u32) * Decimal::from(10u32))
        / Decimal::from(1_000_000u32);
    assert_eq!(
        reserved,
        (one * Decimal::from(3u32))
            .round_dp_with_strategy(6, rust_decimal::RoundingStrategy::AwayFromZero)
    );

    // A template that lists a repair's errors reserves them at their recorded maximum
    let mut repairing = asked.clone();
    repairing.template = "{{ prompt }}{% if errors %}{{ errors | join(', ') }}{% endif %}".into();
    let more = request_reservation(&repairing) - reserved;
    let errors = Decimal::from(ERROR_MAX_BYTES as u64) * Decimal::new(25, 1) * Decimal::from(3u32)
        / Decimal::from(1_000_000u32);
    assert!(
        more >= errors.round_dp(6) - Decimal::new(1, 6),
        "{more} < {errors}"
    );

    // A template that cannot render is never sent: only the output side is reserved
    let mut broken = asked;
    broken.template = "{{ prompt.nothing.here }}".into();
    assert_eq!(
        request_reservation(&broken),
        Decimal::new(122_880, 6) // 3 × 4096 × 10 / 1e6
    );
}
