//! The SSRF rule on resolved addresses (an injected resolver maps test names to private
//! addresses) and on literal hosts: refused before any connection. Every test first proves the
//! refusal on loopback, where a regression could only reach this machine, before it names an
//! address outside 127.0.0.0/8, so no test can send a packet anywhere else.

use std::net::IpAddr;

use ai::{AddressClass, AiError, NetworkPolicy, Provider, Refusal, StaticLookup};

use crate::server::{FakeServer, Reply};
use crate::*;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

/// Production refuses a name that resolves to loopback, and the local server sees nothing.
async fn loopback_canary() {
    let server = FakeServer::start(vec![Reply::json(200, openai_answer("{}", 1, 1))]).await;
    let port = server.addr.port();
    let policy = NetworkPolicy {
        require_https: false,
        ..NetworkPolicy::production(false)
    };
    let client = client_with(
        policy,
        StaticLookup::new([("canary.test", ip("127.0.0.1"))]),
    );
    let model = model(Provider::Openai, &format!("http://canary.test:{port}"));
    let error = client
        .complete(&model, &structured_request(), deadline(10))
        .await
        .expect_err("refused");
    assert!(
        matches!(
            error,
            AiError::Refused(Refusal::Resolved {
                class: AddressClass::Loopback,
                ..
            })
        ),
        "{error:?}"
    );
    assert_eq!(server.connections(), 0, "refused before connecting");
}

#[tokio::test]
async fn given_production_when_a_name_resolves_to_a_non_public_address_then_it_is_refused_before_connecting()
 {
    loopback_canary().await;
    let lookup = StaticLookup::new([
        ("metadata.test", ip("169.254.169.254")),
        ("intranet.test", ip("10.0.0.5")),
        ("router.test", ip("192.168.1.1")),
        ("cgnat.test", ip("100.64.1.1")),
        ("ula.test", ip("fd00::1")),
        ("mapped.test", ip("::ffff:169.254.169.254")),
        ("zero.test", ip("0.0.0.0")),
    ]);
    let client = client_with(NetworkPolicy::production(false), lookup);
    for (host, class) in [
        ("metadata.test", AddressClass::LinkLocal),
        ("intranet.test", AddressClass::Private),
        ("router.test", AddressClass::Private),
        ("cgnat.test", AddressClass::SharedCgnat),
        ("ula.test", AddressClass::Private),
        ("mapped.test", AddressClass::LinkLocal),
        ("zero.test", AddressClass::Unspecified),
    ] {
        let model = model(Provider::Openai, &format!("https://{host}/v1"));
        let error = client
            .complete(&model, &structured_request(), deadline(10))
            .await
            .expect_err("refused");
        match &error {
            AiError::Refused(Refusal::Resolved {
                host: named,
                class: found,
                ..
            }) => {
                assert_eq!((named.as_str(), *found), (host, class));
            }
            other => panic!("{host}: {other:?}"),
        }
        assert_eq!(error.kind(), "refused");
    }
}

#[tokio::test]
async fn given_production_when_the_host_is_a_literal_non_public_address_then_it_is_refused_before_sending()
 {
    loopback_canary().await;
    let client = client_with(NetworkPolicy::production(false), StaticLookup::default());
    for base in [
        "https://169.254.169.254/latest",
        "https://10.1.2.3",
        "https://[::ffff:a9fe:a9fe]",
        "https://[fe80::1]",
        "https://127.0.0.1:9",
    ] {
        let error = client
            .complete(
                &model(Provider::Openai, base),
                &structured_request(),
                deadline(10),
            )
            .await
            .expect_err("refused");
        assert!(
            matches!(error, AiError::Refused(Refusal::Address { .. })),
            "{base}: {error:?}"
        );
    }
}

#[tokio::test]
async fn given_production_when_the_base_url_is_plain_http_then_it_is_refused() {
    let client = client_with(NetworkPolicy::production(false), StaticLookup::default());

    let error = client
        .complete(
            &model(Provider::Anthropic, "http://api.example.test"),
            &structured_request(),
            deadline(10),
        )
        .await
        .expect_err("refused");

    assert_eq!(error, AiError::Refused(Refusal::NotHttps));
}

#[tokio::test]
async fn given_development_when_a_name_resolves_to_loopback_then_the_local_server_answers() {
    let server = FakeServer::start(vec![Reply::json(
        200,
        openai_answer(r#"{"features":[]}"#, 1, 1),
    )])
    .await;
    let client = client_with(
        NetworkPolicy::development(false),
        StaticLookup::new([("ollama.test", ip("127.0.0.1"))]),
    );
    let model = model(
        Provider::Openai,
        &format!("http://ollama.test:{}/v1", server.addr.port()),
    );

    client
        .complete(&model, &structured_request(), deadline(10))
        .await
        .expect("an answer through the guarded resolver");

    assert_eq!(
        server.requests()[0].header("host"),
        Some(format!("ollama.test:{}", server.addr.port()).as_str())
    );
}

#[tokio::test]
async fn given_development_when_a_name_answers_loopback_and_a_private_address_then_the_whole_name_is_refused()
 {
    let server = FakeServer::start(vec![Reply::json(200, openai_answer("{}", 1, 1))]).await;
    let client = client_with(
        NetworkPolicy::development(false),
        StaticLookup::new([
            ("rebind.test", ip("127.0.0.1")),
            ("rebind.test", ip("10.0.0.1")),
        ]),
    );
    let model = model(
        Provider::Openai,
        &format!("http://rebind.test:{}", server.addr.port()),
    );

    let error = client
        .complete(&model, &structured_request(), deadline(10))
        .await
        .expect_err("refused");

    assert!(
        matches!(
            error,
            AiError::Refused(Refusal::Resolved {
                class: AddressClass::Private,
                ..
            })
        ),
        "{error:?}"
    );
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn given_private_urls_allowed_when_a_name_resolves_to_loopback_in_production_then_it_is_called()
 {
    let server = FakeServer::start(vec![Reply::json(
        200,
        openai_answer(r#"{"features":[]}"#, 1, 1),
    )])
    .await;
    let policy = NetworkPolicy {
        require_https: false,
        ..NetworkPolicy::production(true)
    };
    let client = client_with(policy, StaticLookup::new([("gpu.test", ip("127.0.0.1"))]));
    let model = model(
        Provider::Openai,
        &format!("http://gpu.test:{}", server.addr.port()),
    );

    client
        .complete(&model, &structured_request(), deadline(10))
        .await
        .expect("allowed by the operator");
}
